"""Engine on real .onnx/.tflite/.ember models, multi-net and multi-stage, and its error messages."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from toolchain_models import MODEL_FEEDS, real_model

from emberflow.runtime import Engine, EngineError, backend_names, register_backend
from emberflow.toolchain.pack import pack_models


def fixed_batch_copy(src, dst, batch):
    """The digits CNN with a static batch size: a shape variant (stage) of the same net."""
    m = onnx.load(str(src))
    for vi in (m.graph.input[0], m.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].Clear()
        vi.type.tensor_type.shape.dim[0].dim_value = batch
    onnx.save(m, str(dst))
    return dst


def test_onnx_matches_onnxruntime_directly(digits_fp32, digits):
    x = digits["test_x"][:16]
    ours = Engine(digits_fp32)([x])[0]
    direct = ort.InferenceSession(str(digits_fp32), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    np.testing.assert_array_equal(ours, direct)
    assert Engine(digits_fp32)({"image": x})[0].shape == (16, 10)


def test_digits_fp32_accuracy(digits_fp32, digits):
    logits = Engine(digits_fp32)([digits["test_x"]])[0]
    assert (logits.argmax(1) == digits["test_y"]).mean() > 0.95


@pytest.mark.parametrize("key", ["wake_okay_nabu", "wake_alexa"])
def test_tflite_micro_runs_wake_word_models(key):
    e = Engine(real_model(key))
    assert e.graphs[real_model(key).stem].stages[0].backend.name == "tflm"
    spec = e.inputs[0]
    assert spec.dtype == np.int8 and spec.shape == (1, 3, 40) and spec.quant["scale"][0] > 0
    rng = np.random.default_rng(0)
    outs = [e([rng.integers(-128, 127, (1, 3, 40), dtype=np.int8)])[0] for _ in range(20)]
    assert all(o.dtype == np.uint8 and o.shape == (1, 1) for o in outs)
    # streaming model: state carries over, so a reset makes the same input sequence repeat its outputs
    e.graphs[real_model(key).stem].stages[0].backend.reset()
    rng = np.random.default_rng(0)
    again = [e([rng.integers(-128, 127, (1, 3, 40), dtype=np.int8)])[0] for _ in range(20)]
    assert [int(o[0, 0]) for o in outs] == [int(o[0, 0]) for o in again]


@pytest.mark.slow
@pytest.mark.parametrize("key", ["ocr_cls", "ocr_rec", "minilm_int8", "silero_vad", "piper_joe"])
def test_engine_runs_real_onnx_models(key):
    e = Engine(real_model(key))
    outs = e(MODEL_FEEDS[key])
    assert len(outs) == len(e.outputs) and all(np.all(np.isfinite(o)) for o in outs if o.dtype.kind == "f")


def test_multi_net_and_multi_stage_bundle(tmp_path, digits_fp32, digits_int8, digits):
    b1 = fixed_batch_copy(digits_fp32, tmp_path / "b1.onnx", 1)
    b4 = fixed_batch_copy(digits_fp32, tmp_path / "b4.onnx", 4)
    bundle = tmp_path / "multi.ember"
    pack_models([f"digits={b1}", f"digits={b4}", f"digits8={digits_int8}", str(real_model("wake_alexa"))], bundle)
    e = Engine(bundle)
    assert list(e.graphs) == ["digits", "digits8", "alexa"]
    # the two stages share their weights: stored once, like bmodel's coefficients
    from emberflow.runtime.bundle import read_bundle

    b = read_bundle(bundle)
    assert "weights/digits" in b.sections
    assert len(b.section("graph/digits/0")) < 0.2 * b1.stat().st_size
    assert [s.inputs[0].shape for s in e.graphs["digits"].stages] == [(1, 1, 8, 8), (4, 1, 8, 8)]
    x4 = digits["test_x"][:4]
    by_shape = e.run([x4], graph="digits")  # stage picked by input shape
    explicit = e.run([x4], graph="digits", stage=1)
    np.testing.assert_array_equal(by_shape[0], explicit[0])
    np.testing.assert_allclose(e.run([x4[:1]], graph="digits")[0], explicit[0][:1], rtol=1e-5, atol=1e-5)
    assert e.run([x4], graph="digits8")[0].shape == (4, 10)
    assert e.run([np.zeros((1, 3, 40), np.int8)], graph="alexa")[0].dtype == np.uint8
    with pytest.raises(EngineError, match="match no stage"):
        e.run([digits["test_x"][:3]], graph="digits")
    with pytest.raises(EngineError, match=r"no graph 'nope'.*digits, digits8, alexa"):
        e.run([x4], graph="nope")
    with pytest.raises(EngineError, match=r"stages 0\.\.1"):
        e.run([x4], graph="digits", stage=5)


def test_clear_errors(tmp_path, digits_fp32, digits):
    e = Engine(digits_fp32)
    x = digits["test_x"][:2]
    with pytest.raises(
        EngineError, match=r"dtype float64, the model expects float32; convert with .astype\(np.float32\)"
    ):
        e([x.astype(np.float64)])
    with pytest.raises(EngineError, match=r"shape \(2, 8, 8\), the model expects image: float32\[\?x1x8x8\]"):
        e([x[:, 0]])
    with pytest.raises(EngineError, match=r"missing input.*image"):
        e({"img": x})
    with pytest.raises(EngineError, match="got 2 input array"):
        e([x, x])
    with pytest.raises(EngineError, match="not found"):
        Engine(tmp_path / "missing.onnx")
    weird = tmp_path / "weights.bin"
    weird.write_bytes(b"1234")
    with pytest.raises(EngineError, match=r"unknown model file type '\.bin'"):
        Engine(weird)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf at all")
    with pytest.raises(EngineError, match="onnxruntime could not load"):
        Engine(broken)
    with pytest.raises(EngineError, match="backend 'tflm' loads tflite models, not 'onnx'"):
        Engine(digits_fp32, backend="tflm")


def test_input_arrays_are_not_copied(digits_fp32, digits):
    e = Engine(digits_fp32)
    x = np.ascontiguousarray(digits["test_x"][:4])
    feeds = e._feeds(e.inputs, [x])
    assert feeds[0] is x  # contiguous, right dtype: handed to the backend as is
    strided = digits["test_x"][::2][:4]
    assert not strided.flags.c_contiguous and e._feeds(e.inputs, [strided])[0].flags.c_contiguous


def test_plugging_in_a_backend(digits_fp32, tmp_path):
    # A third-party runtime registers by import string; the Engine instantiates it for its format.
    register_backend("ort-copy", "emberflow.runtime.backends.onnx:OnnxRuntimeBackend", formats=("onnx",))
    assert "ort-copy" in backend_names()
    e = Engine(digits_fp32, backend="ort-copy")
    assert e([np.zeros((1, 1, 8, 8), np.float32)])[0].shape == (1, 10)


def test_unchecked_engine_gives_the_same_outputs(digits_fp32, digits):
    x = digits["test_x"][:3]
    checked, unchecked = Engine(digits_fp32), Engine(digits_fp32, check_inputs=False)
    np.testing.assert_array_equal(checked([x])[0], unchecked([x])[0])
    np.testing.assert_array_equal(checked({"image": x})[0], unchecked({"image": x})[0])
    with pytest.raises(EngineError, match="onnxruntime failed while running the model"):  # the backend refuses it
        unchecked([x.astype(np.float64)])
