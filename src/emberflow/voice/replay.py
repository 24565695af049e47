"""Run a live-audio unit on a recording, in-process, frame by frame, as the microphone feeds it.

    replay = LiveReplay(LocalTask(ASRUnit, {"model": "whisper-tiny.en", "endpointing": "semantic"}))
    outputs = replay.feed(audio)   # [(seconds into the audio, value), ...]

The unit's background work (decodes, end-of-turn verdicts) posts its results back to the task
as on the bus. With `settle=True` each frame waits for that work before the next frame is fed:
every decision is then taken at the audio instant it was asked for, as on a machine fast enough
to keep up, so what is measured is the decision itself, not the speed of this machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from emberflow.bus.frame import BusFrame
from emberflow.unit.base import collect
from emberflow.voice import pcm


class LiveReplay:
    def __init__(self, task: Any, source: str = "audio"):
        self.task, self.source = task, source
        self.unit = task.unit
        self._posted: list[Callable[[], Any]] = []
        self.unit.context._post = self._posted.append  # what the host's task queue would run next
        self.t0 = time.monotonic()
        self.frames = 0

    def feed(self, audio: Any, settle: bool = True) -> list[tuple[float, Any]]:
        out: list[tuple[float, Any]] = []
        for frame in pcm.frames(audio):
            at = self.frames * pcm.FRAME / pcm.RATE
            self.frames += 1
            bus = BusFrame(self.source, "sys.pcm", {"seq": self.frames}, frame, hops=[(self.source, self.t0 + at)])
            self.unit.context.hops = list(bus.hops)
            self._collect(self.unit.on_frame(bus), at, out)
            if settle:
                self.settle()
            while self._posted:
                self._collect(self._posted.pop(0)(), at, out)
        return out

    def settle(self) -> None:
        """Wait until the unit's background threads have nothing left to do."""
        for pool in self._pools():
            pool.submit(lambda: None).result()  # single-thread pools: runs after what was queued

    def _pools(self) -> list[Any]:
        pools = [getattr(self.unit, "pool", None), getattr(getattr(self.unit, "turns", None), "pool", None)]
        return [p for p in pools if p is not None]

    @staticmethod
    def _collect(result: Any, at: float, out: list[tuple[float, Any]]) -> None:
        if result is None:
            return
        for piece in collect(result):
            out.append((at, getattr(piece, "value", piece)))
