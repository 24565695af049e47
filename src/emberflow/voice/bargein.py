"""Barge-in by voice: is the user speaking over the answer?

Silero says whether a microphone frame holds speech, but during playback the microphone also
hears the loudspeaker, which is speech too. The played samples are the reference: the audio
unit tags each captured frame with the level of what it played around that moment, and the
level of the echo relative to it (the coupling of speaker to microphone) is learned while the
answer plays, as a high percentile (the 90th) of the ratio of microphone to reference level
over the last 3 s: the loud end of what the echo alone does, which the user briefly talking
does not move. A frame counts as the
user's voice only when Silero hears speech *and* the microphone is `guard_db` louder than the
echo alone would make it. Until enough playback has been heard to learn the coupling, the echo
is assumed as loud as the reference (`initial_gain`), so an open speaker cannot trigger it.

Time is counted in frames, so the detection delay is a property of the audio, not the machine.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from emberflow.voice.pcm import FRAME, RATE

FRAME_S = FRAME / RATE
LEARN_FRAMES = 16  # 0.5 s of playback before the learned coupling replaces initial_gain
QUIET_REFERENCE = 100.0  # rms (-50 dBFS): playback this quiet says nothing about the coupling


def rms(frame: bytes) -> float:
    x = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


@dataclass
class BargeInDetector:
    threshold: float = 0.5  # Silero speech probability
    min_speech: float = 0.096  # voiced time over the echo that makes a barge-in (3 frames)
    guard_db: float = 3.0  # how much louder than the echo estimate the microphone must be
    initial_gain: float = 1.0  # echo level / reference level assumed before it is learned
    _ratios: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=94))  # ~3 s
    _run: int = 0
    _onset: int = -1  # frame index where the current voiced run began
    _held: list[float] = field(default_factory=list)  # ratios of the run: learned only if it was not the user
    _fired: bool = False  # one barge-in per answer: playback stops, the next answer re-arms it
    _answer: float = 0.0  # `playback_started` of the answer being heard
    frames: int = 0

    def reset(self) -> None:
        self._run, self._onset = 0, -1
        self._held = []

    def _run_broken(self) -> None:
        """A voiced run too short to be the user: it was echo after all, so it teaches the level."""
        self._ratios.extend(self._held)
        self.reset()

    @property
    def echo_gain(self) -> float:
        if len(self._ratios) < LEARN_FRAMES:
            return self.initial_gain
        return float(np.percentile(self._ratios, 90))

    def feed(
        self, frame: bytes, prob: float, playing: bool, reference_rms: float, playback_started: float = 0.0
    ) -> int | None:
        """The frame index where the user's speech began, when this frame confirms a barge-in.
        `playback_started` tells answers apart (the microphone may be silent in between)."""
        index, self.frames = self.frames, self.frames + 1
        if not playing or playback_started != self._answer:
            self.reset()
            self._fired, self._answer = False, playback_started
            if not playing:
                return None
        if self._fired:
            return None  # the user's own speech after a barge-in teaches nothing about the echo
        level = rms(frame)
        ratio = level / reference_rms if reference_rms >= QUIET_REFERENCE else None
        over_echo = level > self.echo_gain * reference_rms * 10 ** (self.guard_db / 20)
        if prob >= self.threshold and over_echo:
            if self._run == 0:
                self._onset = index
            self._run += 1
            if ratio is not None:
                self._held.append(ratio)  # maybe the user: not learned unless the run breaks
        else:
            self._run_broken()
            if ratio is not None:
                self._ratios.append(ratio)
        if self._run * FRAME_S >= self.min_speech:
            onset = self._onset
            self.reset()
            self._fired = True
            return onset
        return None
