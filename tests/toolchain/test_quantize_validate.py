"""quantize + validate on the digits CNN: int8 accuracy vs fp32, ST metrics, per-layer search."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from emberflow.cli import app
from emberflow.runtime import Engine
from emberflow.toolchain.quantize import QuantizeError, quantize_model
from emberflow.toolchain.validate import compare, per_layer, validate

runner = CliRunner()


def accuracy(model, digits) -> float:
    return float((Engine(model)([digits["test_x"]])[0].argmax(1) == digits["test_y"]).mean())


def test_int8_accuracy_within_one_point_of_fp32(digits_fp32, digits_int8, digits):
    fp32, int8 = accuracy(digits_fp32, digits), accuracy(digits_int8, digits)
    assert fp32 > 0.95
    assert int8 >= fp32 - 0.01, (fp32, int8)
    assert digits_int8.stat().st_size < 0.6 * digits_fp32.stat().st_size


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_other_calibration_methods(tmp_path, digits_fp32, digits, method):
    out = tmp_path / f"{method}.onnx"
    samples = [{"image": digits["calib_x"][i : i + 1]} for i in range(64)]
    s = quantize_model(digits_fp32, out, samples, method=method)
    assert s.quantized_nodes > 0 and s.calibration_samples == 64
    assert accuracy(out, digits) >= accuracy(digits_fp32, digits) - 0.02


def test_quantize_errors(tmp_path, digits_fp32):
    with pytest.raises(QuantizeError, match="choose one of minmax"):
        quantize_model(digits_fp32, tmp_path / "o.onnx", [{"image": np.zeros((1, 1, 8, 8), np.float32)}], method="kl")
    with pytest.raises(QuantizeError, match="no calibration samples"):
        quantize_model(digits_fp32, tmp_path / "o.onnx", [])


def test_quantize_cli_with_npz_calibration(tmp_path, digits_fp32, digits):
    calib = tmp_path / "calib.npz"
    np.savez(calib, image=digits["calib_x"][:32])
    out = tmp_path / "q.onnx"
    res = runner.invoke(app, ["quantize", str(digits_fp32), "-o", str(out), "--calib", str(calib), "--json"])
    assert res.exit_code == 0, res.output
    assert '"calibration_samples": 32' in res.stdout and out.is_file()


def test_metrics_on_known_arrays():
    ref = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    same = compare(ref, ref.copy())
    assert same.rmse == 0 and same.cos == pytest.approx(1) and same.nse == 1 and same.acc == 1
    shifted = compare(ref, ref + 0.5)
    assert (
        shifted.mean == pytest.approx(0.5) and shifted.std == pytest.approx(0) and shifted.max_abs == pytest.approx(0.5)
    )
    assert shifted.l2r == pytest.approx(np.sqrt(6 * 0.25) / np.linalg.norm(ref))
    swapped = compare(ref, ref[::-1].copy())
    assert swapped.acc == 0
    lsb = compare(np.array([0, 5, -3], np.int8), np.array([1, 5, -4], np.int8))
    assert lsb.lsb_histogram == {-1: 1, 0: 1, 1: 1}


def test_validate_fp32_vs_int8(digits_fp32, digits_int8, digits):
    samples = [{"image": digits["test_x"][i : i + 8]} for i in range(0, 64, 8)]
    r = validate(digits_fp32, digits_int8, samples, per_layer_check=True)
    out = r.outputs[0]
    assert out.samples == 8 and out.acc > 0.9 and out.cos > 0.99
    assert r.first_divergence is None
    compared = {row["tensor"]: row["compared_with"] for row in r.layers}
    # the QDQ naming gotcha: "relu1" in the int8 graph is the *pre-clip* conv output
    assert compared["relu1"] == "relu1_DequantizeLinear_Output"


def test_same_name_compare_would_be_wrong(digits_fp32, digits_int8, digits):
    import onnxruntime as ort

    x = digits["test_x"][:8]
    m = onnx.load(str(digits_int8))
    m.graph.output.append(onnx.ValueInfoProto(name="relu1"))
    pre_clip = ort.InferenceSession(m.SerializeToString()).run(["relu1"], {"image": x})[0]
    assert pre_clip.min() < 0  # negative values: a Relu output would never have them


def test_per_layer_names_the_first_broken_layer(tmp_path, digits_fp32, digits):
    m = onnx.load(str(digits_fp32))
    for init in m.graph.initializer:
        if init.name == "conv2.w":
            w = numpy_helper.to_array(init).copy()
            w[:8] *= -1  # sabotage half the filters of the second conv
            init.CopyFrom(numpy_helper.from_array(w, "conv2.w"))
    broken = tmp_path / "broken.onnx"
    onnx.save(m, str(broken))
    rows, first = per_layer(str(digits_fp32), str(broken), {"image": digits["test_x"][:4]})
    assert rows[0]["tensor"] == "conv1" and rows[0]["ok"]
    assert first is not None and first["tensor"] == "conv2"
    res = runner.invoke(app, ["validate", str(digits_fp32), str(broken), "--per-layer"])
    assert res.exit_code == 1 and "first divergence: conv2" in res.stdout


def test_validate_cli_random_inputs(digits_fp32, digits_int8):
    res = runner.invoke(app, ["validate", str(digits_fp32), str(digits_int8), "--inputs", "random:4", "--json"])
    assert res.exit_code == 0, res.output
    assert '"rmse"' in res.stdout and '"nse"' in res.stdout


def test_validate_tflite_against_its_bundle_shows_zero_lsb_difference(tmp_path):
    from toolchain_models import real_model

    from emberflow.toolchain.inputs import concrete_specs, load_samples
    from emberflow.toolchain.pack import pack_models

    wake = real_model("wake_alexa")
    bundle = tmp_path / "wake.ember"
    pack_models([str(wake)], bundle)
    samples = load_samples("random:12", concrete_specs(Engine(wake).inputs))
    assert samples[0][Engine(wake).inputs[0].name].dtype == np.int8
    r = validate(wake, bundle, samples)
    out = r.outputs[0]
    assert out.lsb_histogram == {0: 12} and out.rmse == 0 and out.max_abs == 0
