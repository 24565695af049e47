"""export-tflite: the quantized digits CNN on TFLite-Micro's int8 kernels matches the ONNX it came from."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from emberflow.cli import app
from emberflow.runtime import Engine
from emberflow.toolchain.tflite_export import ExportError, export_tflite
from emberflow.toolchain.validate import validate


@pytest.fixture(scope="module")
def digits_tflite(tmp_path_factory, digits_int8):
    out = tmp_path_factory.mktemp("tflite") / "digits_int8.tflite"
    export_tflite(digits_int8, out)
    return out


def test_tflm_accuracy_matches_fp32(digits_tflite, digits_fp32, digits):
    e = Engine(digits_tflite)
    spec_in = e.inputs[0]
    assert e.graphs[digits_tflite.stem].stages[0].backend.name == "tflm"
    assert spec_in.dtype == np.int8 and spec_in.shape == (1, 8, 8, 1)  # NHWC
    scale, zp = spec_in.quant["scale"][0], spec_in.quant["zero_point"][0]
    preds = []
    for x in digits["test_x"]:
        xq = np.clip(np.round(x[None].transpose(0, 2, 3, 1) / scale) + zp, -128, 127).astype(np.int8)
        preds.append(int(e([xq])[0].argmax()))
    tflm_acc = float(np.mean(np.array(preds) == digits["test_y"]))
    fp32_acc = float((Engine(digits_fp32)([digits["test_x"]])[0].argmax(1) == digits["test_y"]).mean())
    assert tflm_acc >= fp32_acc - 0.01, (fp32_acc, tflm_acc)


def test_tflm_within_one_lsb_of_the_qdq_onnx(digits_tflite, digits_int8, digits):
    samples = [{"image": digits["test_x"][i : i + 1]} for i in range(60)]
    r = validate(digits_int8, digits_tflite, samples)
    out = r.outputs[0]
    assert set(out.lsb_histogram) <= {-1, 0, 1}, out.lsb_histogram
    assert out.lsb_histogram[0] > 0.9 * 600
    assert out.acc >= 0.98


def test_memory_plan_of_the_export_matches_the_onnx_plan(digits_tflite, digits_int8):
    from emberflow.toolchain.graph import device_dtypes, load_graph
    from emberflow.toolchain.memplan import plan_memory

    g_onnx = load_graph(digits_int8)
    g_tfl = load_graph(digits_tflite)
    assert plan_memory(g_tfl).arena_bytes == plan_memory(g_onnx, dtypes=device_dtypes(g_onnx)).arena_bytes


def test_float_models_and_unsupported_ops_are_refused(tmp_path, digits_fp32, digits_int8):
    with pytest.raises(ExportError, match="quantize the model"):
        export_tflite(digits_fp32, tmp_path / "x.tflite")
    m = onnx.load(str(digits_int8))
    for n in m.graph.node:
        if n.op_type == "MaxPool":
            n.op_type = "LpPool"
    bad = tmp_path / "lp.onnx"
    onnx.save(m, str(bad))
    with pytest.raises(ExportError, match=r"op LpPool \(pool\) is not supported"):
        export_tflite(bad, tmp_path / "x.tflite")


def test_cli(tmp_path, digits_int8):
    out = tmp_path / "d.tflite"
    res = CliRunner().invoke(app, ["export-tflite", str(digits_int8), "-o", str(out)])
    assert res.exit_code == 0 and out.read_bytes()[4:8] == b"TFL3"


def mobile_block_onnx(path):
    """Conv -> depthwise Conv -> residual Add -> GlobalAveragePool -> Flatten -> Gemm, random weights."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)

    def weight(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    inits = [
        weight("stem.w", 8, 1, 3, 3),
        numpy_helper.from_array(np.zeros(8, np.float32), "stem.b"),
        weight("dw", 8, 1, 3, 3),
        weight("fc", 4, 8),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "stem.w", "stem.b"], ["c1"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
        helper.make_node("Conv", ["r1", "dw"], ["d1"], name="depthwise", pads=[1, 1, 1, 1], group=8),
        helper.make_node("Add", ["r1", "d1"], ["s1"], name="skip"),
        helper.make_node("GlobalAveragePool", ["s1"], ["g1"], name="gap"),
        helper.make_node("Flatten", ["g1"], ["f1"], name="flatten"),
        helper.make_node("Gemm", ["f1", "fc"], ["y"], name="head", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mobile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_depthwise_residual_and_global_pool_export(tmp_path):
    from emberflow.toolchain.quantize import quantize_model

    fp32 = mobile_block_onnx(tmp_path / "mobile.onnx")
    rng = np.random.default_rng(0)
    calib = [{"x": rng.random((1, 1, 12, 12), dtype=np.float32)} for _ in range(32)]
    int8 = tmp_path / "mobile_int8.onnx"
    quantize_model(fp32, int8, calib)
    tfl = tmp_path / "mobile.tflite"
    export_tflite(int8, tfl)
    from emberflow.toolchain.graph import load_graph

    ops = [n.op_type for n in load_graph(tfl).nodes]
    assert {"DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED"} <= set(ops)
    samples = [{"x": rng.random((1, 1, 12, 12), dtype=np.float32)} for _ in range(50)]
    out = validate(int8, tfl, samples).outputs[0]
    assert set(out.lsb_histogram) <= {-1, 0, 1}, out.lsb_histogram
    assert out.lsb_histogram[0] >= 0.9 * 200 and out.cos > 0.999


def test_per_layer_onnx_vs_tflite_finds_the_broken_layer(tmp_path, digits_fp32, digits_int8, digits_tflite, digits):
    from onnx import numpy_helper

    from emberflow.toolchain.validate import per_layer

    sample = {"image": digits["test_x"][:1]}
    rows, first = per_layer(str(digits_fp32), str(digits_tflite), sample)
    assert first is None and [r["tensor"] for r in rows] == ["relu1", "relu2", "pool", "flat", "logits"]
    rows, first = per_layer(str(digits_int8), str(digits_tflite), sample)
    assert first is None and all(r["cos"] > 0.9999 for r in rows)  # same integers, up to 1 LSB
    m = onnx.load(str(digits_int8))
    for init in m.graph.initializer:
        if init.name == "conv2.w_quantized":
            w = numpy_helper.to_array(init).copy()
            w[:8] = -w[:8]
            init.CopyFrom(numpy_helper.from_array(w, init.name))
    broken_onnx, broken_tfl = tmp_path / "broken.onnx", tmp_path / "broken.tflite"
    onnx.save(m, str(broken_onnx))
    export_tflite(broken_onnx, broken_tfl)
    rows, first = per_layer(str(digits_int8), str(broken_tfl), sample)
    assert rows[0]["ok"] and first["tensor"] == "relu2"
