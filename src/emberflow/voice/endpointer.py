"""End-of-utterance detection over 32 ms frames with a VAD probability each.

Keeps `pre_roll` seconds of audio before the detected speech start (so the first word is not
clipped), ends an utterance after `min_silence` of trailing silence or at `max_utterance`,
and gives up after `no_speech_timeout` when armed and nobody speaks. Time is counted in
samples, so it behaves the same whether audio arrives in real time or faster.

The endpointer only counts silence; a semantic end of turn (voice/turn_taking.py) decides
earlier and calls `end_now()`, keeping `min_silence` as the longest wait.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from emberflow.voice.pcm import FRAME, RATE

FRAME_S = FRAME / RATE


@dataclass
class Utterance:
    audio: bytes  # pre-roll + speech (+ at most a little trailing silence)
    speech_end_t: float  # monotonic capture time of the last voiced frame
    forced: bool = False  # ended by max_utterance or an external VAD, not by silence
    voiced_frames: int = 0  # frames of `audio` up to the last voiced one


@dataclass
class Endpointer:
    threshold: float = 0.5
    min_speech: float = 0.1  # voiced time needed to start an utterance
    min_silence: float = 0.5  # trailing silence that ends it
    pre_roll: float = 0.4
    max_utterance: float = 15.0
    no_speech_timeout: float = 0.0  # 0 = wait forever
    _ring: deque = field(default_factory=deque)
    _speech: list = field(default_factory=list)
    _voiced_run: int = 0
    _silent_run: int = 0
    _voiced_frames: int = 0  # frames of the utterance up to and including the last voiced one
    _waited: int = 0
    in_speech: bool = False
    last_voiced_t: float = 0.0

    def reset(self) -> None:
        self._ring.clear()
        self._speech.clear()
        self._voiced_run = self._silent_run = self._waited = self._voiced_frames = 0
        self.in_speech = False

    @property
    def speech_seconds(self) -> float:
        return len(self._speech) * FRAME_S

    @property
    def trailing_silence(self) -> float:
        return self._silent_run * FRAME_S if self.in_speech else 0.0

    @property
    def voiced_frames(self) -> int:
        """How much of the utterance is speech: audio past this is trailing silence, so a
        transcript of the first `voiced_frames` frames is a transcript of the whole utterance."""
        return self._voiced_frames

    def current_audio(self, frames: int | None = None) -> bytes:
        return b"".join(self._speech if frames is None else self._speech[:frames])

    def feed(self, frame: bytes, prob: float, t: float) -> str | Utterance | None:
        """Returns "start" when speech starts, an Utterance when it ends, "timeout", or None."""
        voiced = prob >= self.threshold
        if not self.in_speech:
            self._ring.append(frame)
            while len(self._ring) * FRAME_S > self.pre_roll + self.min_speech:
                self._ring.popleft()
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run * FRAME_S >= self.min_speech:
                self.in_speech, self._silent_run = True, 0
                self._speech = list(self._ring)
                self._ring.clear()
                self._voiced_frames = len(self._speech)
                self.last_voiced_t = t
                return "start"
            self._waited += 1
            if self.no_speech_timeout and self._waited * FRAME_S >= self.no_speech_timeout:
                self.reset()
                return "timeout"
            return None
        self._speech.append(frame)
        if voiced:
            self._silent_run = 0
            self.last_voiced_t = t
            self._voiced_frames = len(self._speech)
        else:
            self._silent_run += 1
        if self._silent_run * FRAME_S >= self.min_silence:
            return self._finish()
        if self.speech_seconds >= self.max_utterance:
            return self._finish(forced=True)
        return None

    def force_end(self) -> Utterance | None:
        return self._finish(forced=True) if self.in_speech else None

    def end_now(self) -> Utterance | None:
        """End the utterance at this frame: a semantic verdict said the turn is complete."""
        return self._finish() if self.in_speech else None

    def _finish(self, forced: bool = False) -> Utterance:
        keep = len(self._speech) - max(0, self._silent_run - int(0.2 / FRAME_S))  # drop most trailing silence
        utt = Utterance(b"".join(self._speech[:keep]), self.last_voiced_t, forced, self._voiced_frames)
        self.reset()
        return utt
