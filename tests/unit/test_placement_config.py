"""The `placement` config is checked before anything starts: each mistake is refused with what
to write instead; a valid one gives each kind its backend, replicas and per-replica resources."""

from __future__ import annotations

import pytest

from emberflow.sys.config import load_config
from emberflow.sys.placement import LOCAL, parse_placement


def test_a_ray_placement_with_replicas_and_per_replica_resources():
    placed = parse_placement(
        {
            "llm": {"backend": "ray", "resources": {"gpu_box": 1}, "max_restarts": -1},
            "embed": {"backend": "ray", "replicas": 2, "resources": [{"a": 1}, {"b": 0.5}]},
            "tts": "local",
        },
        ray_address="auto",
    )
    assert placed["llm"].remote and placed["llm"].resources_of(0) == {"gpu_box": 1} and placed["llm"].max_restarts == -1
    assert [placed["embed"].resources_of(i) for i in range(2)] == [{"a": 1}, {"b": 0.5}]
    assert placed["tts"] == LOCAL and not placed["tts"].remote
    assert placed["llm"].num_cpus == 0.0  # by default a unit reserves no CPU: it sizes its own threads
    assert placed["llm"].spare  # an idle actor is kept for a fast restart unless told otherwise


def test_a_ray_placement_may_keep_no_spare_actor():
    placed = parse_placement({"tts": {"backend": "ray", "spare": False}}, ray_address="auto")
    assert not placed["tts"].spare


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"llm": {"backend": "k8s"}}, "not one of local, ray"),
        ({"llm": {"backend": "ray", "gpus": 1}}, "unknown keys ['gpus']"),
        ({"llm": {"backend": "ray", "replicas": 0}}, "replicas: expected a whole number >= 1"),
        ({"llm": {"backend": "ray", "resources": {"gpu_box": 0}}}, "resources: expected {name: amount > 0}"),
        ({"llm": {"backend": "ray", "replicas": 3, "resources": [{"a": 1}, {"b": 1}]}}, "2 entries for 3 replica(s)"),
        ({"llm": {"backend": "ray", "max_restarts": -2}}, "max_restarts: expected a whole number >= -1"),
        ({"llm": {"backend": "ray", "labels": {"zone": 1}}}, "labels: expected {label: value} strings"),
        ({"llm": {"replicas": 2}}, "need backend: ray"),
        ({"llm": {"spare": False}}, "need backend: ray"),
        ({"llm": {"backend": "ray", "spare": "no"}}, "spare: expected true or false"),
        ({"llm": ["ray"]}, "expected a mapping such as {backend: ray}"),
    ],
)
def test_a_wrong_placement_is_refused_saying_what_to_write(spec, says):
    with pytest.raises(ValueError) as refused:
        parse_placement(spec, ray_address="auto")
    assert says in str(refused.value)


def test_ray_placement_needs_a_cluster_address(tmp_path):
    path = tmp_path / "emberflow.yaml"
    path.write_text("placement: {llm: {backend: ray}}\n")
    with pytest.raises(ValueError, match="ray_address"):
        load_config(path)
    pytest.importorskip("ray", reason="without the ray extra the same config is refused for that")
    assert load_config(path, ray_address="10.0.0.5:6379").placement == {"llm": {"backend": "ray"}}
