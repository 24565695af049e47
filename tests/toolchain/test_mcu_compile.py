"""emberflow compile: generated C built for this machine, bit-exact with tflite-micro on every layer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mcu_models import (
    float_io_edge_inputs,
    float_io_model,
    mlperf_model,
    residual_cnn,
    wake_word,
)
from typer.testing import CliRunner

from emberflow.cli import app
from emberflow.toolchain.mcu.check_exact import random_inputs, validate_compiled
from emberflow.toolchain.mcu.compile import compile_model
from emberflow.toolchain.mcu.lower import CompileError


def _exact(model, art, steps, kernels):
    r = validate_compiled(model, art.dir, random_inputs(art, steps), on="host", host_kernels=kernels)
    assert r.layers and all(x.elements > 0 for x in r.layers)
    assert r.differing_outputs == 0
    assert [(x.layer, x.differing) for x in r.layers if x.differing] == []
    return r


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory, digits_int8):
    return compile_model(digits_int8, "stm32f412", tmp_path_factory.mktemp("mcu") / "digits", measure=False)


@pytest.mark.parametrize("kernels", ["portable", "dsp"])
def test_digits_cnn_from_onnx_is_bit_exact_on_every_layer(digits_dir, digits_int8, kernels):
    r = _exact(digits_int8, digits_dir, 4, kernels)
    assert {x.op for x in r.layers} >= {"CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED"}


@pytest.mark.parametrize("kernels", ["portable", "dsp"])
def test_residual_cnn_is_bit_exact(tmp_path, kernels):
    model = residual_cnn(tmp_path / "resnet.tflite")
    art = compile_model(model, "stm32h747", tmp_path / "resnet", measure=False)
    r = _exact(model, art, 3, kernels)
    assert {"ADD", "AVERAGE_POOL_2D", "CONV_2D"} <= {x.op for x in r.layers}


def test_mobile_block_with_depthwise_and_mean_is_bit_exact(tmp_path):
    from test_tflite_export import mobile_block_onnx

    from emberflow.toolchain.quantize import quantize_model

    rng = np.random.default_rng(0)
    int8 = tmp_path / "mobile_int8.onnx"
    quantize_model(
        mobile_block_onnx(tmp_path / "m.onnx"),
        int8,
        [{"x": rng.random((1, 1, 12, 12), dtype=np.float32)} for _ in range(16)],
    )
    art = compile_model(int8, "stm32h747", tmp_path / "mobile", measure=False)
    r = _exact(int8, art, 3, "dsp")
    assert {"DEPTHWISE_CONV_2D", "ADD", "MEAN"} <= {x.op for x in r.layers}


@pytest.mark.parametrize("name", ["okay_nabu", "alexa"])
def test_streaming_wake_word_is_bit_exact_for_30_steps_with_state(tmp_path, name):
    model = wake_word(name)
    art = compile_model(model, "stm32f412", tmp_path / name, measure=False)
    assert art.manifest["state_bytes"] > 0 and art.manifest["variables"]
    r = _exact(model, art, 30, "dsp")
    assert {"CONCATENATION", "STRIDED_SLICE", "LOGISTIC", "QUANTIZE"} <= {x.op for x in r.layers}
    if name == "okay_nabu":
        assert "SPLIT_V" in {x.op for x in r.layers}


@pytest.mark.parametrize("name", ["kws_ref_model.tflite", "ad01_int8.tflite", "str_ww_ref_model.tflite"])
def test_mlperf_tiny_models_are_bit_exact_and_use_the_planner_lower_bound(tmp_path, name):
    model = mlperf_model(name)
    art = compile_model(model, "stm32h747", tmp_path / "m", measure=False)
    assert art.manifest["arena_bytes"] == art.manifest["arena_lower_bound"]
    _exact(model, art, 3, "portable")


def test_generated_api_and_files(digits_dir):
    n = digits_dir.name
    header = (digits_dir.dir / f"{n}.h").read_text()
    for fn in ("create_and_init", "run", "get_error", "destroy", "get_info", "input", "output", "set_observer"):
        assert f"ai_{n}_{fn}(" in header
    data = (digits_dir.dir / f"{n}_data.c").read_text()
    assert ".nn_weights" in data and "const ef_conv_params" in data
    assert ".nn_data_act" in (digits_dir.dir / f"{n}.c").read_text()
    assert "FLASH" in (digits_dir.dir / f"{n}_memory.ld").read_text()
    m = digits_dir.manifest
    assert m["arena_bytes"] == m["arena_lower_bound"] > 0


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_compile_cli_json(tmp_path):
    model = residual_cnn(tmp_path / "r.tflite")
    res = _cli("compile", model, "--target", "stm32h747", "-o", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["name"] == "out" and info["macc"] > 0 and (tmp_path / "out" / "out.c").is_file()


def test_float_model_is_refused_and_nothing_is_written(tmp_path, digits_fp32):
    res = _cli("compile", digits_fp32, "--target", "stm32h747", "-o", tmp_path / "f")
    assert res.exit_code == 1 and "quantize" in res.output and not (tmp_path / "f").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_corrupt_tflite_is_refused(tmp_path):
    model = residual_cnn(tmp_path / "r.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(model.read_bytes()[:400])
    res = _cli("compile", bad, "--target", "stm32h747", "-o", tmp_path / "b")
    assert res.exit_code == 1 and "bad.tflite" in res.output and not (tmp_path / "b").exists()


def test_unsupported_op_names_the_node(tmp_path):
    from emberflow.toolchain.tflite_writer import S, TfliteBuilder

    b = TfliteBuilder()
    x = b.tensor("x", (1, 8), S.TensorType.INT8, scale=0.1)
    y = b.tensor("y", (1, 8), S.TensorType.INT8, scale=1 / 128)
    b.op(S.BuiltinOperator.TANH, [x], [y])
    path = tmp_path / "tanh.tflite"
    path.write_bytes(b.build([x], [y]))
    res = _cli("compile", path, "--target", "stm32h747", "-o", tmp_path / "t")
    assert res.exit_code == 1 and "TANH tanh_0 (y)" in res.output and "not supported" in res.output
    assert not (tmp_path / "t").exists()


def test_model_over_the_target_flash_is_refused(tmp_path, monkeypatch):
    target = tmp_path / "tiny.toml"
    target.write_text(
        (__import__("emberflow.targets", fromlist=["x"]).BUILTIN_DIR / "stm32f412.toml")
        .read_text()
        .replace('name = "stm32f412"', 'name = "tiny"')
        .replace("bytes = 1048576", "bytes = 20000")
    )
    model = residual_cnn(tmp_path / "r.tflite")
    with pytest.raises(CompileError, match="bytes more than tiny's flash"):
        compile_model(model, str(target), tmp_path / "o", measure=False)
    res = _cli("compile", model, "--target", target, "-o", tmp_path / "o")
    assert res.exit_code == 1 and "flash" in res.output and not (tmp_path / "o").exists()


@pytest.mark.parametrize("kernels", ["portable", "dsp"])
def test_float_input_and_output_are_bit_exact(tmp_path, kernels):
    """QUANTIZE from float and DEQUANTIZE to float against tflite-micro: random floats over the
    quantizer's range and beyond it (saturation), and the values where rounding is decided."""
    model = float_io_model(tmp_path / "float_io.tflite")
    art = compile_model(model, "stm32h747", tmp_path / "fio", measure=False)
    assert art.manifest["inputs"][0]["dtype"] == "float32" and art.manifest["outputs"][0]["dtype"] == "float32"
    lo, hi = art.manifest["inputs"][0]["float_range"]
    assert (lo, hi) == pytest.approx(((-128 - 3) * 0.1, (127 - 3) * 0.1))
    samples = random_inputs(art, 10) + float_io_edge_inputs()
    assert min(float(s[0].min()) for s in samples) < lo and max(float(s[0].max()) for s in samples) > hi
    r = validate_compiled(model, art.dir, samples, on="host", host_kernels=kernels)
    assert [x.op for x in r.layers] == ["QUANTIZE", "FULLY_CONNECTED", "DEQUANTIZE"]
    assert r.bit_exact and all(x.elements > 0 and x.max_abs_diff == 0 for x in r.layers), r.layers


def test_float_input_outside_the_guarantee_saturates(tmp_path):
    """Infinities, NaN and quotients beyond int32: TFLM's float-to-int cast is undefined there (on x86
    every one becomes -128); the compiled code saturates and maps NaN to the zero point."""
    from emberflow.toolchain.mcu.host import HostModel

    art = compile_model(float_io_model(tmp_path / "f.tflite"), "stm32h747", tmp_path / "fio", measure=False)
    x = np.zeros((1, 256), np.float32)
    x[0, :6] = [np.inf, -np.inf, np.nan, 1e10, -1e10, 3e9]
    host = HostModel(art)
    host.run([x])
    quantized = np.frombuffer(host.captured[(0, 0)], np.int8)[:6]
    assert quantized.tolist() == [127, -128, 3, 127, -128, 127]
