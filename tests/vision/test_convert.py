"""`emberflow convert` (TF.js graph model -> ONNX) checked against the original model run by the
pure-JS @tensorflow/tfjs in Node.js, on the same real-photo inputs, with `emberflow validate`'s
metrics: cosine >= 0.9999 on every output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from visionkit import TFJS, TFJS_REFERENCE, photo

from emberflow.runtime import Engine
from emberflow.toolchain.validate import compare
from emberflow.vision.image import decode, letterbox

pytestmark = pytest.mark.slow


def tfjs_outputs(model_json, feeds: dict[str, np.ndarray], outputs: list[str], tmp) -> dict[str, np.ndarray]:
    """Run the TF.js model in Node.js (CPU backend, no native code) on `feeds`."""
    if shutil.which("node") is None or not (TFJS_REFERENCE / "node_modules").is_dir():
        pytest.fail("the TF.js reference needs Node.js and `npm ci --prefix tests/vision/tfjs_reference` (make test)")
    ind, outd = tmp / "in", tmp / "out"
    ind.mkdir()
    spec = {"inputs": [], "outputs": outputs}
    for name, x in feeds.items():
        x.tofile(ind / f"{name}.bin")
        spec["inputs"].append({"name": name, "dtype": str(x.dtype), "shape": list(x.shape), "file": f"{name}.bin"})
    (ind / "inputs.json").write_text(json.dumps(spec))
    subprocess.run(
        ["node", str(TFJS_REFERENCE / "reference.mjs"), str(model_json), str(ind), str(outd)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    got = {}
    for o in json.loads((outd / "outputs.json").read_text())["outputs"]:
        dtype = np.float32 if o["dtype"] == "float32" else np.int32
        got[o["name"]] = np.fromfile(outd / o["file"], dtype).reshape(o["shape"])
    return got


def nanodet_input() -> np.ndarray:
    from emberflow.vision.detect import MEAN_BGR, STD_BGR

    boxed, _ = letterbox(decode(photo("dog.jpg").read_bytes()), 416, 416)
    return np.ascontiguousarray(((boxed[..., ::-1] - MEAN_BGR) / STD_BGR).transpose(2, 0, 1)[None], np.float32)


CASES = {
    # model: (input name, the input from a real photo, output tensors as the model signature names them)
    "nanodet": (
        "input_1",
        nanodet_input,
        ["Identity:0", "Identity_1:0", "Identity_2:0", "Identity_3:0", "Identity_4:0", "Identity_5:0"],
    ),
    "movenet-multipose": (
        "input",
        lambda: letterbox(decode(photo("person.jpg").read_bytes()), 256, 256)[0][None].astype(np.int32),
        ["Identity:0"],
    ),
    "blazeface": (
        "input",
        lambda: (
            letterbox(decode(photo("astronaut.png").read_bytes()), 256, 256)[0][None].astype(np.float32) / 127.5 - 1.0
        ),
        ["Identity:0", "Identity_1:0", "Identity_2:0", "Identity_3:0"],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_conversion_matches_tfjs(name, tmp_path):
    input_name, make_input, outputs = CASES[name]
    onnx_path = tmp_path / f"{name}.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "emberflow", "convert", str(TFJS / f"{name}.json"), "-o", str(onnx_path), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["inputs"] == [input_name] and report["bytes"] == onnx_path.stat().st_size
    x = make_input()
    reference = tfjs_outputs(TFJS / f"{name}.json", {input_name: x}, outputs, tmp_path)
    engine = Engine(onnx_path)
    candidate = dict(zip([o.name for o in engine.outputs], engine([x])))
    for ref_name, ref in reference.items():
        cand = candidate[ref_name.split(":")[0]]
        m = compare(ref, cand, ref_name)
        assert m.cos >= 0.9999, (name, ref_name, m)
        assert ref.shape == cand.shape
    if name == "nanodet":  # the SparseToDense shape arithmetic was computed while converting
        assert report["folded_nodes"] > 0 and "ScatterND" not in report["onnx_ops"]
        assert report["onnx_ops"].get("Transpose", 0) <= len(outputs)  # NHWC <-> NCHW folded away inside


def test_unsupported_ops_are_named_with_their_nodes(tmp_path):
    """handtrack uses TF control flow (while loops) and NMS ops: refused, naming op and node."""
    done = subprocess.run(
        [sys.executable, "-m", "emberflow", "convert", str(TFJS / "handtrack.json"), "-o", str(tmp_path / "h.onnx")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2
    assert "unsupported TF.js op(s)" in done.stderr and "NonMaxSuppressionV5 (node '" in done.stderr
    assert "Enter (node '" in done.stderr
    assert not (tmp_path / "h.onnx").exists()
    bad = tmp_path / "bad.json"
    bad.write_text('{"modelTopology": {}, "format": "layers-model", "weightsManifest": []}')
    done = subprocess.run(
        [sys.executable, "-m", "emberflow", "convert", str(bad), "-o", str(tmp_path / "b.onnx")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2 and "layers model" in done.stderr


def test_affine_quantized_weights_dequantize_as_tfjs_does(tmp_path):
    """BlazeFace re-quantized to uint8 (`quantization: {dtype, scale, min}`, what
    tensorflowjs_converter --quantize_uint8 writes): both sides dequantize the same bytes."""
    doc = json.loads((TFJS / "blazeface.json").read_text())
    blob = (TFJS / "blazeface.bin").read_bytes()
    out, offset = bytearray(), 0
    for spec in doc["weightsManifest"][0]["weights"]:
        dtype = np.float32 if spec["dtype"] == "float32" else np.int32
        n = int(np.prod(spec["shape"])) if spec["shape"] else 1
        w = np.frombuffer(blob, dtype, n, offset)
        offset += n * 4
        if dtype is np.float32 and n > 16:
            lo, hi = float(w.min()), float(w.max())
            scale = (hi - lo) / 255 or 1.0
            out += np.round((w - lo) / scale).astype(np.uint8).tobytes()
            spec["quantization"] = {"dtype": "uint8", "scale": scale, "min": lo}
        else:
            out += w.tobytes()
    doc["weightsManifest"][0]["paths"] = ["q.bin"]
    (tmp_path / "q.bin").write_bytes(bytes(out))
    (tmp_path / "q.json").write_text(json.dumps(doc))
    from emberflow.toolchain.tfjs import convert_tfjs

    convert_tfjs(tmp_path / "q.json", tmp_path / "q.onnx")
    x = CASES["blazeface"][1]()
    outputs = CASES["blazeface"][2]
    reference = tfjs_outputs(tmp_path / "q.json", {"input": x}, outputs, tmp_path)
    engine = Engine(tmp_path / "q.onnx")
    candidate = dict(zip([o.name for o in engine.outputs], engine([x])))
    for ref_name, ref in reference.items():
        assert compare(ref, candidate[ref_name.split(":")[0]], ref_name).cos >= 0.9999
