"""check: precise reasons why real models do not fit small targets, and a clean fit otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toolchain_models import MODEL_FEEDS, real_model
from typer.testing import CliRunner

from emberflow.cli import app
from emberflow.targets import TargetError, list_targets, load_target
from emberflow.toolchain.check import check_model
from emberflow.toolchain.graph import device_dtypes, load_graph
from emberflow.toolchain.memplan import plan_memory

runner = CliRunner()


def run_check(path, target, shapes=None, feeds=None):
    g = load_graph(path, shapes, feeds=feeds)
    return check_model(g, plan_memory(g, dtypes=device_dtypes(g)), load_target(target))


def test_all_required_profiles_ship():
    names = {t.name for t in list_targets()}
    assert {"stm32f412", "stm32h747", "csk6", "ax630c", "bm1684x", "rpi5", "host"} <= names
    f412 = load_target("stm32f412")
    assert f412.regions_for("weights")[0].bytes == 1024 * 1024
    assert f412.regions_for("activations")[0].bytes == 256 * 1024


@pytest.mark.parametrize(
    "key,shapes",
    [
        ("ocr_rec", {"x": (1, 3, 48, 320)}),
        ("ocr_det", {"x": (1, 3, 320, 320)}),
        ("minilm_int8", {}),
    ],
)
def test_big_models_do_not_fit_stm32f412_and_say_why(key, shapes):
    r = run_check(real_model(key), "stm32f412", shapes)
    assert not r.fits
    kinds = {v.kind for v in r.violations}
    assert {"flash", "ram", "unsupported-op"} <= kinds
    flash = next(v for v in r.violations if v.kind == "flash")
    assert "weights need" in flash.message and "1.0 MiB" in flash.message and "too big" in flash.message
    ops = [v for v in r.violations if v.kind == "unsupported-op"]
    assert all(v.nodes for v in ops)  # every unsupported op names its nodes


@pytest.mark.slow
@pytest.mark.parametrize("key", ["silero_vad", "piper_joe"])
def test_dynamic_models_do_not_fit_stm32f412(key):
    r = run_check(real_model(key), "stm32f412", feeds=MODEL_FEEDS[key])
    assert not r.fits
    assert any(v.kind == "flash" for v in r.violations)
    assert any(
        v.kind == "unsupported-op" and ("If" in v.message or "NonZero" in v.message or "Range" in v.message)
        for v in r.violations
    )


def test_int8_digits_fits_stm32f412(digits_int8):
    r = run_check(digits_int8, "stm32f412")
    assert r.fits, r.violations
    assert r.summary().startswith("fits stm32f412: flash")


def test_float_model_is_rejected_by_an_int_only_npu(digits_fp32, digits_int8):
    r = run_check(digits_fp32, "csk6")
    assert [v.kind for v in r.violations] == ["dtype"]
    assert "float32" in r.violations[0].message and "quantize" in r.violations[0].hint
    assert run_check(digits_int8, "csk6").fits


def test_csk6_per_call_conv_limits_name_the_conv():
    r = run_check(real_model("ocr_det"), "csk6", {"x": (1, 3, 320, 320)})
    limits = [v for v in r.violations if v.kind == "op-limit"]
    assert limits and all("split this conv" in v.hint for v in limits)
    assert all(v.nodes[0] in v.message and "per call on csk6" in v.message for v in limits)


def test_cli_exit_codes_and_json(digits_int8):
    bad = runner.invoke(
        app, ["check", str(real_model("ocr_rec")), "-t", "stm32f412", "--shape", "x=1x3x48x320", "--json"]
    )
    assert bad.exit_code == 1
    data = json.loads(bad.stdout)
    assert data["fits"] is False and data["weights_bytes"] > data["weights_capacity"]
    good = runner.invoke(app, ["check", str(digits_int8), "--target", "stm32f412"])
    assert good.exit_code == 0 and "fits stm32f412" in good.stdout
    unknown = runner.invoke(app, ["check", str(digits_int8), "--target", "esp99"])
    assert unknown.exit_code == 2 and "known targets" in unknown.stderr


def test_user_profiles_are_found(tmp_path, monkeypatch):
    text = load_target("stm32f412").path
    custom = (
        (Path(text).read_text())
        .replace('name = "stm32f412"', 'name = "tiny"')
        .replace("bytes = 1048576", "bytes = 1024")
    )
    (tmp_path / "tiny.toml").write_text(custom)
    monkeypatch.setenv("EMBERFLOW_TARGETS", str(tmp_path))
    assert "tiny" in {t.name for t in list_targets()}
    assert load_target("tiny").regions_for("weights")[0].bytes == 1024
    (tmp_path / "broken.toml").write_text('name = "broken"\n')
    with pytest.raises(TargetError, match="missing or has a bad field"):
        load_target("broken")


def test_notes_when_a_model_only_fits_external_memory():
    r = run_check(real_model("ocr_rec"), "stm32h747", {"x": (1, 3, 48, 320)})
    assert r.weights_region == "qspi_flash" and r.ram_region == "sdram"
    assert any("does not fit flash" in n and "qspi_flash" in n for n in r.notes)
    assert any("activation arena" in n and "sdram" in n for n in r.notes)
    r = run_check(real_model("ocr_rec"), "csk6", {"x": (1, 3, 48, 320)})
    assert r.ram_region == "psram" and any("share_memory" in n for n in r.notes)
