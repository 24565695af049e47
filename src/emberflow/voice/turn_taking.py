"""Semantic end of turn: at each short pause, is the user done?

Two opinions are asked as soon as the pause is `turn_pause` long, side by side on their own
threads: Smart Turn on the audio (intonation, rhythm) and the words of the live transcript.
The turn is complete only when the model says so *and* the words do not stop mid-sentence;
either "no" keeps the endpointer listening, up to its longest silence. The first "no" that
arrives decides: nobody waits for the other opinion to hear "keep listening".

One `Pause` per question asked: when the user speaks again, the pending opinions are forgotten.
A pause the audio model judged unfinished may be asked about again as the silence grows (the
ASR unit's `turn_repeat`): its opinion firms up with the silence, and a "not yet" at 0.15 s
would otherwise cost the whole longest wait.
"""

from __future__ import annotations

import collections
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from emberflow.voice.smart_turn import SmartTurn
from emberflow.voice.unfinished import sounds_unfinished
from emberflow.voice.utterance_decoder import Transcript

Verdict = Literal["complete", "incomplete", "undecided"]


@dataclass
class Pause:
    frames: int  # voiced frames of the utterance when the pause began
    probability: Future[float]


@dataclass
class TurnTaking:
    model: SmartTurn
    threshold: float = 0.5
    language: str = "en"
    check_words: bool = True  # False: the audio model alone decides
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="smart-turn"))
    # How each verdict came about, for taskinfo and tests.
    counts: dict[str, int] = field(
        default_factory=lambda: {"asked": 0, "complete": 0, "incomplete_audio": 0, "incomplete_words": 0}
    )
    probabilities: list[float] = field(default_factory=list)  # recent model outputs
    pause: Pause | None = None
    model_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=20))

    def _timed(self, audio: np.ndarray) -> float:
        start = time.monotonic()
        try:
            return self.model.probability(audio)
        finally:
            self.model_ms.append(round((time.monotonic() - start) * 1000, 1))

    def ask(self, frames: int, audio: np.ndarray) -> Future[float]:
        """Start the model on the turn so far (speech and the pause, as the model was trained)."""
        self.counts["asked"] += 1
        self.pause = Pause(frames, self.pool.submit(self._timed, audio))
        return self.pause.probability

    def pending(self) -> bool:
        """A verdict was asked for and has not been given."""
        return self.pause is not None

    def forget(self) -> None:
        self.pause = None

    def verdict(self, transcript: tuple[int, Transcript] | None) -> Verdict:
        """Complete, incomplete, or not yet known, from what has arrived for the current pause."""
        pause = self.pause
        if pause is None:
            return "undecided"
        words = transcript[1].text if transcript is not None and transcript[0] >= pause.frames else None
        if words is not None and self.check_words and sounds_unfinished(words, self.language):
            return self._decided("incomplete_words")
        if not pause.probability.done():
            return "undecided"
        p = pause.probability.result()
        if p < self.threshold:
            return self._decided("incomplete_audio", p)
        if words is None:
            return "undecided"  # the model says done; the words have not arrived yet
        return self._decided("complete", p)

    def _decided(self, how: str, p: float | None = None) -> Verdict:
        self.counts[how] += 1
        if p is not None:
            self.probabilities = [*self.probabilities[-19:], round(p, 3)]
        self.pause = None  # one verdict per pause
        return "complete" if how == "complete" else "incomplete"

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
