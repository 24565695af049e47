"""Models the MCU tests compile: from the repo (digits CNN, residual CNN, mobile block), from
packages (microWakeWord), and the MLPerf Tiny files when ../shared is present."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from toolchain_models import real_model

ROOT = Path(__file__).resolve().parents[2]
MLPERF = Path(__file__).resolve().parents[3] / "shared" / "models" / "mlperf-tiny"
MLPERF_CANDIDATES = [MLPERF, Path("/work/shared/models/mlperf-tiny")]


def mlperf_model(name: str) -> Path:
    for d in MLPERF_CANDIDATES:
        if (d / name).is_file():
            return d / name
    pytest.skip(f"MLPerf Tiny model {name} not found (shared/models/mlperf-tiny is not next to this clone)")


def residual_cnn(path: Path) -> Path:
    """The residual CNN of the memory-planner benchmark (bench/toolchain_tflite_models.py)."""
    spec = importlib.util.spec_from_file_location(
        "toolchain_tflite_models", ROOT / "bench" / "toolchain_tflite_models.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path.write_bytes(module.resnet_int8())
    return path


def wake_word(name: str) -> Path:
    return real_model(f"wake_{name}")


FLOAT_IO_SCALE = 0.1  # not a binary fraction: x / scale in float32 and in double round differently


def float_io_model(path: Path, n: int = 256, m: int = 8) -> Path:
    """Float in, float out: QUANTIZE (scale 0.1, zero point 3) -> int8 FULLY_CONNECTED -> DEQUANTIZE,
    the shape of a model converted with float input and output kept."""
    import numpy as np

    from emberflow.toolchain.tflite_writer import S, TfliteBuilder

    rng = np.random.default_rng(0)
    b = TfliteBuilder()
    x = b.tensor("x", (1, n), S.TensorType.FLOAT32)
    xq = b.tensor("x_q", (1, n), S.TensorType.INT8, scale=FLOAT_IO_SCALE, zero_point=3)
    w = b.tensor("w", (m, n), S.TensorType.INT8, data=rng.integers(-127, 128, (m, n)).astype(np.int8), scale=0.01)
    bias = b.tensor(
        "b", (m,), S.TensorType.INT32, data=rng.integers(-500, 500, m).astype(np.int32), scale=FLOAT_IO_SCALE * 0.01
    )
    yq = b.tensor("y_q", (1, m), S.TensorType.INT8, scale=0.5, zero_point=-5)
    y = b.tensor("y", (1, m), S.TensorType.FLOAT32)
    b.op(S.BuiltinOperator.QUANTIZE, [x], [xq])
    b.op(
        S.BuiltinOperator.FULLY_CONNECTED,
        [xq, w, bias],
        [yq],
        S.BuiltinOptions.FullyConnectedOptions,
        S.FullyConnectedOptionsT(),
    )
    b.op(S.BuiltinOperator.DEQUANTIZE, [yq], [y])
    path.write_bytes(b.build([x], [y]))
    return path


def float_io_edge_inputs(n: int = 256) -> list[list]:
    """Inputs where rounding is decided: quotients x / scale at k + 1/2 for k from -131 to 130 (ties,
    away from zero), one float step below and above them, and 0.25 and 0.35 (0.25 / 0.1 is 2.5 in
    float32 but 2.49999996 in double; TFLM divides in float)."""
    import numpy as np

    scale = np.float32(FLOAT_IO_SCALE)
    ties = (np.arange(-131, 131) + 0.5).astype(np.float32) * scale
    values = np.concatenate(
        [
            ties,
            np.nextafter(ties, np.float32(-np.inf)),
            np.nextafter(ties, np.float32(np.inf)),
            np.array([0.25, -0.25, 0.35, -0.35, 0.0, -0.0], np.float32),
        ]
    )
    values = np.concatenate([values, np.zeros((-len(values)) % n, np.float32)])
    return [[row.reshape(1, n)] for row in values.reshape(-1, n)]
