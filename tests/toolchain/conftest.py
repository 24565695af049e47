"""Shared fixtures of the toolchain tests: the digits CNN (fp32 and int8) and its data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from toolchain_models import FIXTURES


@pytest.fixture(scope="session")
def digits():
    data = np.load(FIXTURES / "digits_data.npz")
    return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def digits_fp32() -> Path:
    return FIXTURES / "digits_cnn.onnx"


@pytest.fixture(scope="session")
def digits_int8(tmp_path_factory, digits_fp32, digits) -> Path:
    from emberflow.toolchain.quantize import quantize_model

    out = tmp_path_factory.mktemp("quant") / "digits_int8.onnx"
    samples = [{"image": digits["calib_x"][i : i + 1]} for i in range(len(digits["calib_x"]))]
    quantize_model(digits_fp32, out, samples, method="minmax", per_channel=True)
    return out
