"""Model repositories for the KServe tests: the digits CNN fixture and a deliberately slow model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "toolchain"
DIGITS = FIXTURES / "digits_cnn.onnx"


def digits_inputs(n: int) -> np.ndarray:
    return np.load(FIXTURES / "digits_data.npz")["test_x"][:n]


def add_model(repo: Path, name: str, version: int, source: Path, config: str | None = None) -> Path:
    vdir = repo / name / str(version)
    vdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, vdir / "model.onnx")
    if config is not None:
        (repo / name / "config.yaml").write_text(config)
    return vdir / "model.onnx"


def make_slow_model(path: Path, width: int = 512, depth: int = 40) -> Path:
    """y = tanh(x W)^depth: a few tens of ms per request of 64 rows on 2 cores, so queues fill."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32), "w")
    nodes, prev = [], "x"
    for i in range(depth):
        nodes += [helper.make_node("MatMul", [prev, "w"], [f"m{i}"]), helper.make_node("Tanh", [f"m{i}"], [f"t{i}"])]
        prev = f"t{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, width])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def make_count_model(path: Path) -> Path:
    """n = the number of strings in `text` (ONNX Shape of a tensor(string)): a model taking KServe
    BYTES whose answer stays one number however big the input is."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Shape", ["text"], ["n"])],
        "count",
        [helper.make_tensor_value_info("text", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("n", TensorProto.INT64, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path
