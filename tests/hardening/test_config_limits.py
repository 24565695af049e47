"""Issue 15: every new limit is configurable, with a sane default, and a value that would switch a
protection off (0, a negative number, NaN, a string) is refused when the config is loaded."""

from __future__ import annotations

import pytest

from emberflow.sys.config import POSITIVE_LIMITS, Config, load_config


def test_every_limit_has_a_positive_default():
    cfg = Config()
    for name in POSITIVE_LIMITS:
        assert getattr(cfg, name) > 0, name


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "10", True, None])
def test_a_limit_that_is_not_a_finite_positive_number_is_refused(tmp_path, value):
    path = tmp_path / "emberflow.yaml"
    path.write_text("frame_timeout: 1\n")
    assert load_config(path).frame_timeout == 1
    if value is None:
        path.write_text("sandbox_quota: null\n")
    else:
        import yaml

        path.write_text(yaml.safe_dump({"sandbox_quota": value}))
    with pytest.raises(ValueError, match="sandbox_quota"):
        load_config(path)


def test_allowed_hosts_must_be_a_list_of_names(tmp_path):
    path = tmp_path / "emberflow.yaml"
    path.write_text("allowed_hosts: ai.example.com\n")
    with pytest.raises(ValueError, match="allowed_hosts"):
        load_config(path)
    path.write_text("allowed_hosts: [ai.example.com]\n")
    assert load_config(path).allowed_hosts == ["ai.example.com"]
