"""profile: measured per-op times line up with the graph; the target estimate follows MACC."""

from __future__ import annotations

import json

import pytest
from toolchain_models import MODEL_FEEDS, real_model
from typer.testing import CliRunner

from emberflow.cli import app
from emberflow.targets import load_target
from emberflow.toolchain.graph import load_graph
from emberflow.toolchain.profile import chrome_trace, estimate, profile_model, speedscope


def test_profile_digits_measures_every_conv(digits_fp32, digits):
    g = load_graph(digits_fp32)
    r = profile_model(digits_fp32, g, {"image": digits["test_x"][:1]}, runs=5, target=load_target("stm32f412"))
    by_name = {o.name: o for o in r.ops}
    assert by_name["conv2"].measured_us > 0 and by_name["fc"].measured_us > 0
    # the estimate is compute-bound for conv2 and scales with its MACC on a 1e8 MAC/s float M4
    assert by_name["conv2"].bound == "compute"
    assert abs(by_name["conv2"].estimated_us - 1e6 * by_name["conv2"].macc / 1e8) < 1e-6
    assert r.mean_ms > 0 and r.throughput_per_s > 0 and r.estimated_ms > 0
    trace = chrome_trace(r)
    assert {e["pid"] for e in trace["traceEvents"]} == {1, 2}
    ss = speedscope(r)
    assert len(ss["profiles"]) == 2 and ss["profiles"][0]["events"][0]["type"] == "O"


def test_faster_target_gives_smaller_estimate(digits_int8):
    g = load_graph(digits_int8)
    slow = sum(o.estimated_us for o in estimate(g, load_target("stm32f412")))
    fast = sum(o.estimated_us for o in estimate(g, load_target("stm32h747")))
    assert fast < slow


def test_profile_cli_tflite_and_exports(tmp_path):
    trace, ss = tmp_path / "t.json", tmp_path / "s.json"
    res = CliRunner().invoke(
        app,
        [
            "profile",
            str(real_model("wake_alexa")),
            "-t",
            "stm32f412",
            "--runs",
            "5",
            "--trace",
            str(trace),
            "--speedscope",
            str(ss),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["estimated_ms"] > 0 and data["mean_ms"] > 0
    assert json.loads(trace.read_text())["traceEvents"] and json.loads(ss.read_text())["profiles"]


def test_html_reports_of_every_command(tmp_path, digits_fp32, digits_int8):
    runner = CliRunner()
    cmds = {
        "analyze": ["analyze", str(digits_int8)],
        "check": ["check", str(real_model("ocr_cls")), "-t", "stm32f412", "--shape", "x=1x3x48x192"],
        "validate": ["validate", str(digits_fp32), str(digits_int8), "--per-layer", "--inputs", "random:2"],
        "profile": ["profile", str(digits_fp32), "-t", "csk6", "--runs", "3"],
    }
    for name, args in cmds.items():
        out = tmp_path / f"{name}.html"
        res = runner.invoke(app, args + ["--report", str(out)])
        assert res.exit_code in (0, 1), res.output
        text = out.read_text()
        assert text.startswith("<!doctype html>") and "<svg" in text, name


@pytest.mark.slow
@pytest.mark.parametrize("key", ["ocr_rec", "minilm_int8", "silero_vad", "piper_joe", "ocr_det"])
def test_profile_real_models(key):
    feeds = MODEL_FEEDS[key]
    g = load_graph(real_model(key), {k: v.shape for k, v in feeds.items()}, feeds=feeds)
    r = profile_model(real_model(key), g, feeds, runs=2, target=load_target("rpi5"))
    measured = [o for o in r.ops if o.measured_us]
    assert measured and r.estimated_ms > 0
    # most measured time is attributed to nodes of the model file, not to renamed fused nodes
    # (Silero's work happens inside If branches, which the profiler reports by inner names)
    named = {n.name for n in g.nodes}
    if "If" not in g.op_types():
        assert sum(o.measured_us for o in measured if o.name in named) > 0.5 * sum(o.measured_us for o in measured)
