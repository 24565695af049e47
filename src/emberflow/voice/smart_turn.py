"""Semantic end of turn: the Smart Turn v3 classifier (pipecat-ai's ONNX file, BSD-2-Clause).

The model listens to the last 8 s of the user's turn and says whether it sounds finished:
intonation and the words so far, not the length of the silence. Only the ONNX file is used;
its input, Whisper's 80-bin log-mel spectrogram of exactly 8 s, is computed here with numpy
(the model card's recipe: zero-mean unit-variance waveform, 25 ms Hann windows every 10 ms,
Slaney mel filters, log10 clamped to 8 below the peak, scaled to about [-1, 1]).

Run on one thread, sequentially: it takes ~10-20 ms and must not take both cores from
the recogniser that runs beside it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from emberflow.voice import pcm

WINDOW_S = 8  # the model sees exactly this much audio: older audio is cut, shorter is zero-padded in front
_N_FFT, _HOP, _N_MELS = 400, 160, 80
MODEL = "smart-turn-v3"


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    return np.where(f < 1000.0, 3.0 * f / 200.0, 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) * 27.0 / np.log(6.4))


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * np.exp((m - 15.0) * np.log(6.4) / 27.0))


@functools.lru_cache(maxsize=1)
def _filters() -> tuple[np.ndarray, np.ndarray]:
    """(Hann window, mel filter bank of shape (80, 201)), built once."""
    window = np.hanning(_N_FFT + 1)[:-1]  # periodic, as torch.hann_window
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(pcm.RATE / 2)), _N_MELS + 2))
    bins = np.linspace(0, pcm.RATE // 2, _N_FFT // 2 + 1)
    slopes = edges[None, :] - bins[:, None]
    down = -slopes[:, :-2] / np.diff(edges)[:-1]
    up = slopes[:, 2:] / np.diff(edges)[1:]
    bank = np.maximum(0.0, np.minimum(down, up)) * (2.0 / (edges[2:] - edges[:-2]))[None, :]  # equal area
    return window, bank.T


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Float audio of exactly WINDOW_S seconds at 16 kHz -> (80, 800) float32 features."""
    x = audio.astype(np.float32)
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    window, bank = _filters()
    padded = np.pad(x.astype(np.float64), _N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP]
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2  # (frames, 201)
    spec = np.log10(np.maximum(bank @ power.T, 1e-10))[:, :-1]  # the last frame is dropped, as Whisper does
    spec = np.maximum(spec, spec.max() - 8.0)
    return ((spec + 4.0) / 4.0).astype(np.float32)


def last_window(audio: np.ndarray) -> np.ndarray:
    """The last WINDOW_S seconds as float in [-1, 1), zero-padded in front when shorter."""
    n = WINDOW_S * pcm.RATE
    x = audio[-n:].astype(np.float32) / 32768.0
    return np.pad(x, (n - len(x), 0)) if len(x) < n else x


class SmartTurn:
    """`probability(int16 audio of the turn so far)` -> P(the turn is complete)."""

    def __init__(self, model_path: str | Path, threads: int = 1):
        import onnxruntime as ort

        from emberflow.voice.cpu import onnx_options

        # Idle onnxruntime workers spin by default: that would steal a core from Whisper and the LLM.
        self.session: Any = ort.InferenceSession(
            str(model_path), sess_options=onnx_options(threads), providers=["CPUExecutionProvider"]
        )
        self.calls = 0
        self.probability(np.zeros(pcm.RATE, np.int16))  # warm up: the first run allocates

    def probability(self, audio: np.ndarray) -> float:
        self.calls += 1
        features = log_mel(last_window(audio))[None]
        (out,) = self.session.run(None, {"input_features": features})
        return float(np.asarray(out).reshape(-1)[0])  # the graph ends in a sigmoid


def model_path() -> Path:
    """The installed Smart Turn ONNX file, or a clear error naming the install command."""
    from emberflow.models.catalogue import Catalogue

    cat = Catalogue()
    ref = cat.find(MODEL, "turn")
    path = cat.prepare(ref)
    assert path is not None  # find() checked it is installed
    return path
