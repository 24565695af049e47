"""Voice models in the catalogue: the multi-part Whisper base, assembled once into the cache."""

from __future__ import annotations

import subprocess
import sys

import pytest
from speech import utterance

from emberflow.models.catalogue import Catalogue
from emberflow.unit.local import LocalTask
from emberflow.units.asr import ASRUnit

pytestmark = pytest.mark.slow


def test_whisper_base_is_assembled_once_and_transcribes(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBERFLOW_CACHE", str(tmp_path))
    cat = Catalogue()
    desc = cat.resolve("whisper-base").descriptor
    assert cat.weights_path(desc) is None  # nothing assembled in this fresh cache yet
    r = subprocess.run(
        [sys.executable, "-m", "emberflow", "models", "install", "whisper-base"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    path = cat.weights_path(desc)
    assert path is not None and (path / "model.bin").stat().st_size > 140_000_000
    again = subprocess.run(
        [sys.executable, "-m", "emberflow", "models", "install", "whisper-base"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "already installed" in again.stdout  # once
    # StackFlow's Chinese streaming model name now picks the multilingual model
    assert cat.resolve("sherpa-ncnn-streaming-zipformer-zh-14M-2023-02-23").name == "whisper-base"
    with LocalTask(ASRUnit, {"model": "whisper-base", "language": "en"}) as task:
        assert task.unit.multilingual
        text = task.infer(utterance(0.3, "The quick brown fox jumps over the lazy dog.", 0.5).tobytes())[
            0
        ]  # the Final text, shaped as the host sends it
    assert "fox" in text.lower() and "dog" in text.lower()
