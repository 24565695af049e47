"""Whisper on a short utterance without paying for 30 seconds of audio.

faster-whisper pads every input to Whisper's 30 s window, so a 2 s question costs the encoder as
much as 30 s of speech (~1.3 s of CPU here against ~0.25 s). CTranslate2's encoder accepts fewer
frames, so this decoder encodes the utterance plus `pad` seconds of silence only (whisper.cpp's
`audio_ctx` idea). Without the pad the decoder tends to repeat the sentence until it runs out of
tokens; with one second of it the transcripts of the test questions equal the full-window ones.
Two guards cover what remains: the number of new tokens is capped by the audio's length, and a
sentence that repeats the one before it ends the text (the loop Whisper falls into on noise).

A disfluent previous-text prompt (a known Whisper trick) keeps it close to what was said: a
sentence cut at a pause comes out as "What is the largest..." or "What is the capital of?"
instead of a tidied-up complete sentence, which is what the end-of-turn judgement needs.

Used for live utterances (at most `max_utterance`, 15 s by default); files and sessions go
through faster-whisper's own `transcribe`, which also handles audio longer than 30 s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from emberflow.voice import pcm

MAX_SECONDS = 28.0  # beyond this the full window is used: there is no room left for the pad
TOKENS_PER_SECOND = 8  # fast English is ~4 tokens/s; twice that never cuts real speech
_SENTENCE = re.compile(r"[^.?!]+[.?!]*")
VERBATIM_PROMPT = "Umm, let me think like, hmm... Okay, here's what I'm, like, thinking."


@dataclass(frozen=True)
class Transcript:
    text: str
    no_speech_prob: float  # Whisper's own estimate that the audio holds no speech


def drop_repeats(text: str) -> str:
    """Cut the loop Whisper falls into on a short context: 'What is it? What is it? What is' and
    'what is what is what is what' both end after their first round."""
    out: list[str] = []
    for m in _SENTENCE.finditer(text):
        sentence = m.group(0).strip()
        if not sentence:
            continue
        if out and (sentence.lower() == out[-1].lower() or out[-1].lower().startswith(sentence.lower())):
            break
        out.append(sentence)
    return _drop_word_loop(" ".join(out))


def _drop_word_loop(text: str) -> str:
    """A tail that repeats a group of n words more than twice keeps one round of it."""
    words = text.split()
    keys = [w.strip(",.?!").lower() for w in words]
    for n in range(1, len(words) // 2 + 1):
        start = len(words) - n  # walk back while the words repeat with period n
        while start > 0 and keys[start - 1] == keys[start - 1 + n]:
            start -= 1
        if len(words) - start > 2 * n:
            return " ".join(words[: start + n])
    return text


class UtteranceDecoder:
    def __init__(self, model: Any, language: str | None, beam_size: int, pad: float = 1.0, verbatim: bool = True):
        from faster_whisper.tokenizer import Tokenizer

        self.model, self.beam_size, self.pad = model, beam_size, pad
        self.tokenizer = Tokenizer(
            model.hf_tokenizer,
            model.model.is_multilingual,
            task="transcribe",
            language=language if model.model.is_multilingual else None,
        )
        self.verbatim = self.tokenizer.encode(" " + VERBATIM_PROMPT) if verbatim else []

    def decode(self, audio: bytes, hotwords: str | None = None) -> Transcript:
        samples = pcm.to_float(audio)
        seconds = len(samples) / pcm.RATE
        if seconds > MAX_SECONDS:
            return self._full(samples, hotwords)
        features = self.model.feature_extractor(samples)
        frames = features.shape[1] + int(self.pad * 100)
        frames += frames % 2  # the encoder's convolution halves the frame count
        features = np.pad(features, ((0, 0), (0, max(0, frames - features.shape[1]))))
        encoded = self.model.encode(features)
        # hot words take the previous-text slot when there are some: they matter more
        previous = [] if hotwords else self.verbatim
        prompt = self.model.get_prompt(self.tokenizer, previous, without_timestamps=True, hotwords=hotwords)
        max_new = int(TOKENS_PER_SECOND * seconds) + 8
        result = self.model.model.generate(
            encoded,
            [prompt],
            beam_size=self.beam_size,
            max_length=len(prompt) + max_new,
            suppress_blank=True,
            suppress_tokens=[-1],
            return_no_speech_prob=True,
        )[0]
        tokens = [t for t in result.sequences_ids[0] if t < self.tokenizer.eot]
        return Transcript(drop_repeats(self.tokenizer.decode(tokens).strip()), float(result.no_speech_prob))

    def _full(self, samples: np.ndarray, hotwords: str | None) -> Transcript:
        segments, _ = self.model.transcribe(
            samples,
            language=self.tokenizer.language_code,
            beam_size=self.beam_size,
            vad_filter=False,
            without_timestamps=True,
            condition_on_previous_text=False,
            hotwords=hotwords,
        )
        segments = list(segments)
        return Transcript(
            "".join(s.text for s in segments).strip(), min((s.no_speech_prob for s in segments), default=1.0)
        )
