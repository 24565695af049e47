"""Latest-only processing of live frames, with every superseded frame counted.

A detector that takes 75 ms cannot keep up with a 30 fps camera. Queueing frames would make the
answers ever later; this keeps one slot: a new frame replaces a waiting one (counted in
`dropped`), and a worker thread always takes the newest. The unit's task thread stays free, so
it keeps draining its input queue and answering client requests meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("emberflow.vision")


class LatestOnly:
    def __init__(self, work: Callable[[Any], None], name: str):
        self._work = work
        self._cond = threading.Condition()
        self._item: Any = None
        self._waiting = False
        self._closed = False
        self.received = self.processed = self.dropped = self.failed = 0
        self._busy = False  # a frame is being processed
        self._latency: deque[float] = deque(maxlen=512)  # capture -> result, seconds
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        with self._cond:
            self.received += 1
            if self._waiting:
                self.dropped += 1  # never silent: taskinfo shows it
            self._item, self._waiting = item, True
            self._cond.notify()

    def record_latency(self, seconds: float) -> None:
        self._latency.append(seconds)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                item, self._item, self._waiting, self._busy = self._item, None, False, True
            ok = False
            try:
                self._work(item)
                ok = True
            except Exception:
                log.exception("processing a frame failed")
            with self._cond:
                self._busy = False
                if ok:
                    self.processed += 1
                else:
                    self.failed += 1

    def stats(self) -> dict[str, Any]:
        """Counters taken together: received == processed + dropped + failed + in_flight, always."""
        with self._cond:
            counts = {
                "received": self.received,
                "processed": self.processed,
                "dropped": self.dropped,
                "failed": self.failed,
                "in_flight": int(self._waiting) + int(self._busy),
            }
        lat = sorted(self._latency)

        def pct(q: float) -> float | None:
            return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else None

        return {**counts, "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "samples": len(lat)}}


def now() -> float:
    return time.monotonic()
