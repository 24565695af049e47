"""analyze: MACC/params/bytes of the digits CNN checked against hand counts, and real models."""

from __future__ import annotations

import pytest
from toolchain_models import MODEL_FEEDS, real_model

from emberflow.toolchain.analyze import layer_stats, summarize
from emberflow.toolchain.graph import ModelError, load_graph, parse_shape_overrides


def test_digits_cnn_counts_match_hand_computation(digits_fp32):
    g = load_graph(digits_fp32)
    rows = {r.name: r for r in layer_stats(g)}
    # conv1: 8 out channels x 8x8 positions x (1 in channel x 3x3); conv2: 16 x 8x8 x (8 x 3x3)
    assert rows["conv1"].macc == 8 * 64 * 9
    assert rows["conv2"].macc == 16 * 64 * 72
    assert rows["fc"].macc == 10 * 256
    assert rows["pool"].macc == 16 * 16 * 4
    assert rows["conv1"].params == 8 * 9 + 8
    assert rows["conv2"].params == 16 * 72 + 16
    assert rows["fc"].params == 2560 + 10
    assert rows["conv2"].output_shape == "1x16x8x8"
    s = summarize(g, list(rows.values()))
    assert s["params"] == 80 + 1168 + 2570
    assert s["weight_bytes"] == 4 * s["params"]


def test_quantized_model_counts_int8_weights_once(digits_int8):
    g = load_graph(digits_int8)
    s = summarize(g, layer_stats(g))
    # int8 weights + int32 biases + float scales: about a quarter of the fp32 15 KB
    assert 3818 <= s["weight_bytes"] < 4 * 3818 / 2


@pytest.mark.parametrize(
    "key,shapes",
    [
        ("ocr_rec", {"x": (1, 3, 48, 320)}),
        ("ocr_det", {"x": (1, 3, 320, 320)}),
        ("ocr_cls", {"x": (1, 3, 48, 192)}),
        ("minilm_int8", {}),
        ("wake_okay_nabu", {}),
    ],
)
def test_real_models_weight_bytes_match_file_size(key, shapes):
    path = real_model(key)
    g = load_graph(path, shapes)
    s = summarize(g, layer_stats(g))
    assert s["macc"] > 0
    # weights are most of the file (a .tflite also stores per-channel scales and long names)
    share = 0.4 if path.suffix == ".tflite" else 0.6
    assert share * path.stat().st_size < s["weight_bytes"] <= path.stat().st_size


def test_rec_macc_scales_with_input_width():
    path = real_model("ocr_rec")
    narrow = summarize(g := load_graph(path, {"x": (1, 3, 48, 160)}), layer_stats(g))["macc"]
    wide = summarize(g := load_graph(path, {"x": (1, 3, 48, 320)}), layer_stats(g))["macc"]
    assert 1.6 < wide / narrow < 2.2  # the conv backbone is linear in width; the head is not quite


@pytest.mark.slow
def test_dynamic_models_get_measured_shapes():
    g = load_graph(real_model("piper_joe"), feeds=MODEL_FEEDS["piper_joe"])
    unknown = [o for n in g.nodes for o in n.outputs if o and g.tensors[o].shape is None]
    assert not unknown
    assert any("probe run" in w for w in g.warnings)
    s = load_graph(real_model("silero_vad"), feeds=MODEL_FEEDS["silero_vad"])
    assert s.weight_bytes > 1_000_000  # weights live inside the If branches


def test_shape_override_errors_are_clear():
    with pytest.raises(ModelError, match="NAME=DIMxDIM"):
        parse_shape_overrides(["x:1x3"])
    with pytest.raises(ModelError, match="not inputs of"):
        load_graph(real_model("ocr_cls"), {"image": (1, 3, 48, 192)})


def test_unknown_and_missing_files(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_graph(tmp_path / "nope.onnx")
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"x")
    with pytest.raises(ModelError, match="unknown model format"):
        load_graph(bad)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0" * 64)
    with pytest.raises(ModelError, match="TFL3"):
        load_graph(junk)


def test_control_flow_is_flagged():
    g = load_graph(real_model("silero_vad"), feeds=MODEL_FEEDS["silero_vad"])
    s = summarize(g, layer_stats(g))
    assert any("control-flow" in w and "If" in w for w in s["warnings"])
