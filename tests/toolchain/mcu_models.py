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
    spec = importlib.util.spec_from_file_location("toolchain_tflite_models", ROOT / "bench" / "toolchain_tflite_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path.write_bytes(module.resnet_int8())
    return path


def wake_word(name: str) -> Path:
    return real_model(f"wake_{name}")
