"""The transcript of what the user has said so far, kept up to date in the background.

Whisper is not a streaming recogniser: a transcript is a decode of the whole utterance. So the
ASR unit asks for one at every pause (and, if it wants partials, every so often while the user
speaks), on a single decoding thread; each result remembers how much of the utterance it
covers, counted in frames up to the last voiced one. When the endpoint comes, a transcript that
covers every voiced frame *is* the final one: nothing new was said after it began. Only when
speech came after the last decode began is there anything left to wait for.

`covered` counts (`reused`, `waited`, `decoded`) say which of the three it was, per utterance.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from emberflow.voice.utterance_decoder import Transcript


@dataclass
class _Job:
    frames: int  # voiced frames of the utterance this decode covers
    future: Future[Transcript]


@dataclass
class LiveTranscript:
    decode: Callable[[bytes], Transcript]
    pool: ThreadPoolExecutor
    on_ready: Callable[[], None] = lambda: None  # called from the decoding thread when a job ends
    counts: dict[str, int] = field(default_factory=lambda: {"reused": 0, "waited": 0, "decoded": 0, "dropped": 0})
    _jobs: list[_Job] = field(default_factory=list)
    decode_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=20))

    def _timed(self, audio: bytes) -> Transcript:
        start = time.monotonic()
        try:
            return self.decode(audio)
        finally:
            self.decode_ms.append(round((time.monotonic() - start) * 1000, 1))

    def reset(self) -> None:
        """A new utterance: earlier jobs may still finish, but nobody will look at them."""
        for job in self._jobs:
            if job.future.cancel():
                self.counts["dropped"] += 1
        self._jobs = []

    def latest(self) -> tuple[int, Transcript] | None:
        """The finished transcript covering the most speech."""
        done = [j for j in self._jobs if j.future.done() and not j.future.cancelled() and j.future.exception() is None]
        if not done:
            return None
        best = max(done, key=lambda j: j.frames)
        return best.frames, best.future.result()

    def covers(self, frames: int) -> bool:
        """A decode of this much speech is finished or under way."""
        return any(j.frames >= frames and not j.future.cancelled() for j in self._jobs)

    def request(self, frames: int, audio: bytes) -> None:
        """Decode the utterance so far (unless that is already done or under way). A job still
        waiting for the decoder is replaced: it would only cover less."""
        if self.covers(frames):
            return
        for job in self._jobs:
            if not job.future.running() and not job.future.done() and job.future.cancel():
                self.counts["dropped"] += 1
        self._jobs = [j for j in self._jobs if not j.future.cancelled()]
        future = self.pool.submit(self._timed, audio)
        future.add_done_callback(lambda f: None if f.cancelled() else self.on_ready())
        self._jobs.append(_Job(frames, future))

    def final(self, frames: int, audio: bytes) -> Transcript:
        """The transcript at the endpoint: reused if one covers every voiced frame, awaited if
        one is being decoded, decoded now otherwise."""
        latest = self.latest()
        if latest is not None and latest[0] >= frames:
            self.counts["reused"] += 1
            return latest[1]
        running = [j for j in self._jobs if j.frames >= frames and not j.future.cancelled()]
        if running:
            self.counts["waited"] += 1
            return running[0].future.result()
        self.counts["decoded"] += 1
        return self.pool.submit(self._timed, audio).result()
