"""Bounded task input queues with an explicit policy per link. Nothing is dropped silently.

- `lossless`: at most `maxsize` items wait; a full queue blocks the producer (backpressure).
- `latest`: at most one item per link waits; a newer one replaces it and the drop is counted
  (conflation, for camera frames and detections where only the newest matters).
System items (wake, interrupt, cancel) go to a separate lane that `get` serves first, so they
overtake queued data, as pipecat's system frames do. `flush` discards queued data on purpose
(barge-in) and counts it separately from drops.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Any


class Policy(str, Enum):
    LOSSLESS = "lossless"
    LATEST = "latest"


class LinkQueue:
    def __init__(self, maxsize: int = 64):
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._data: deque[tuple[str | None, Any]] = deque()  # (latest-key or None, item)
        self._system: deque[Any] = deque()
        self._lossless = 0  # lossless items waiting (latest items are bounded by the link count)
        # One lock, two conditions: the worker waits for items, producers (a unit's own thread
        # posting work) wait for room, and each side wakes only the other with notify().
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        # Set while the worker sleeps somewhere else than on `_not_empty` (its zmq poll over the
        # links it reads itself): the next put or close calls it once to wake the worker there.
        self._waker: Callable[[], None] | None = None
        self.dropped: dict[str, int] = {}  # per link: superseded by a newer item
        self.flushed = 0
        self.high_water = 0

    def put(
        self, item: Any, *, system: bool = False, latest_key: str | None = None, timeout: float | None = None
    ) -> bool:
        """Queue an item. Returns False only if a lossless put timed out or the queue is closed."""
        with self._lock:
            if self._closed:
                return False
            if system:
                self._system.append(item)
            elif latest_key is not None:
                for i, (key, _) in enumerate(self._data):
                    if key == latest_key:
                        del self._data[i]
                        self.dropped[latest_key] = self.dropped.get(latest_key, 0) + 1
                        break
                self._data.append((latest_key, item))
            else:
                deadline = None if timeout is None else time.monotonic() + timeout
                while self._lossless >= self.maxsize and not self._closed:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._not_full.wait(remaining)
                if self._closed:
                    return False
                self._data.append((None, item))
                self._lossless += 1
            if len(self._data) > self.high_water:
                self.high_water = len(self._data)
            self._not_empty.notify()  # one consumer: the task's worker
            self._wake_sleeper()
            return True

    def arm(self, waker: Callable[[], None]) -> bool:
        """The consumer is about to sleep outside this queue: True if it is open and empty, and
        then the next put or close calls `waker`. `disarm` when awake again."""
        with self._lock:
            if self._closed or self._system or self._data:
                return False
            self._waker = waker
            return True

    def disarm(self) -> None:
        with self._lock:
            self._waker = None

    def _wake_sleeper(self) -> None:  # with the lock held
        if self._waker is not None:
            waker, self._waker = self._waker, None
            waker()

    def system_waiting(self) -> bool:
        """A system item (wake, action) is queued: it goes before frames read elsewhere."""
        return bool(self._system)

    def count_flushed(self, n: int) -> None:
        """Input discarded on purpose outside the queue (frames waiting on a link at an interrupt)."""
        with self._lock:
            self.flushed += n

    @property
    def closed(self) -> bool:
        return self._closed

    def remove(self, match: Callable[[Any], bool]) -> list[Any]:
        """Take out the queued data items `match` accepts (a request whose client left)."""
        with self._lock:
            taken = [item for _, item in self._data if match(item)]
            if taken:
                self._data = deque(entry for entry in self._data if not match(entry[1]))
                self._lossless = sum(1 for key, _ in self._data if key is None)
                self._not_full.notify_all()
            return taken

    def full(self) -> bool:
        with self._lock:
            return self._lossless >= self.maxsize

    def get(self, timeout: float | None = None) -> Any | None:
        """Next item (system lane first), or None on timeout or when closed and drained."""
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._system and not self._data:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._not_empty.wait(remaining)
            if self._system:
                item = self._system.popleft()
            else:
                key, item = self._data.popleft()
                if key is None:
                    self._lossless -= 1
                    self._not_full.notify()  # room for one waiting producer
            return item

    def flush(self, keep: Callable[[Any], bool] | None = None) -> int:
        """Discard queued data items (not system ones), except those `keep` accepts. Returns how many."""
        with self._lock:
            kept = deque(entry for entry in self._data if keep is not None and keep(entry[1]))
            n = len(self._data) - len(kept)
            self._data = kept
            self._lossless = sum(1 for key, _ in kept if key is None)
            self.flushed += n
            self._not_full.notify_all()
            return n

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
            self._wake_sleeper()

    def __len__(self) -> int:
        return len(self._data) + len(self._system)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "depth": len(self._data),
                "high_water": self.high_water,
                "maxsize": self.maxsize,
                "dropped": dict(self.dropped),
                "flushed": self.flushed,
            }
