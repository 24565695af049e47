"""Data links a task's worker thread reads itself, so a frame reaches `on_frame` with no thread
hand-off: the worker sleeps in one zmq poll over its own SUB socket and a wake-up fd, instead of
the host's main thread reading the frame, queueing it and waking the worker (issue 12: that
hand-off was most of a bus hop's cost over raw pyzmq).

Only the data frames of lossless links on this machine come here. System frames (a wake word)
have their own topic (`bus.frame.system_topic_of`) and the host's main thread reads them, for
they must interrupt a task that is busy; `latest` links stay with the host too, since their
conflation needs a reader that keeps draining while the task works (a camera must never be
slowed by a slow detector), and so do links from other machines (`Task._direct_frame`).

The SUB socket belongs to the worker, which holds `_lock` whenever it uses it (its poll and
recv). The host thread links and unlinks while the task is busy too (a link made mid-generation
takes effect at once, as before): it queues the change, kicks the worker out of its poll and
applies the change itself if the lock is free. If the lock is taken, the worker is in its poll
(the kick ends it) or a recv, and applies the change on the way out (`_settle`); the host waits
for that, microseconds, so the socket is connected before the link's ack goes out, as before.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any

import zmq

from emberflow.bus.frame import topic_of
from emberflow.bus.queue import LinkQueue

_NEW, _OPEN, _CLOSED = 0, 1, 2
# How long the host waits for a sleeping worker to apply a link change (it wakes at once; the
# bound only keeps a stuck worker from stopping the host's loop).
_APPLY_WAIT_S = 2.0


class DirectLinks:
    def __init__(self, ctx: zmq.Context[Any]):
        self._ctx = ctx
        self._lock = threading.Lock()
        self._state = _NEW
        # (link?, source, addr, set once applied): changes waiting for the socket
        self._changes: deque[tuple[bool, str, str, threading.Event]] = deque()
        self._sub: zmq.Socket[bytes] | None = None
        self._poller = zmq.Poller()
        # The worker's doorbell: LinkQueue rings it when something is queued while the worker
        # sleeps in the poll (an eventfd: one fd, a counter, no bytes to drain one by one).
        self._bell = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.sources: dict[str, str] = {}  # source work id -> its data address (host thread's view)

    # --- host thread -------------------------------------------------------------------------------
    def link(self, source: str, addr: str) -> None:
        self.sources[source] = addr
        self._change(True, source, addr)

    def unlink(self, source: str) -> None:
        addr = self.sources.pop(source, None)
        if addr is not None:
            self._change(False, source, addr)

    def _change(self, linked: bool, source: str, addr: str) -> None:
        """Returns once the socket is connected (or disconnected), as when the host's own socket
        was: the client's link ack follows, and frames published after it must arrive."""
        applied = threading.Event()
        self._changes.append((linked, source, addr, applied))  # deque ops are atomic: the worker may pop
        self.ring()
        if self._lock.acquire(blocking=False):  # the worker is busy: the socket is free to change
            try:
                self._apply()
            finally:
                self._lock.release()
        elif self._state == _OPEN:  # the worker is in its poll (woken by the bell) or a recv
            applied.wait(_APPLY_WAIT_S)

    def ring(self) -> None:
        os.eventfd_write(self._bell, 1)

    def close_bell(self) -> None:
        """Once the worker has ended (nobody rings any more)."""
        os.close(self._bell)

    # --- worker thread -----------------------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            sub = self._sub = self._ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.RCVHWM, 256)
            sub.setsockopt(zmq.LINGER, 0)
            self._poller.register(sub, zmq.POLLIN)
            self._poller.register(self._bell, zmq.POLLIN)
            self._state = _OPEN
            self._apply()

    def close(self) -> None:
        with self._lock:
            self._state = _CLOSED
            self._apply()  # sets what still waits, changes nothing
            if self._sub is not None:
                self._sub.close(0)
                self._sub = None

    def recv(self) -> list[bytes] | None:
        """A frame waiting on a direct link, without waiting."""
        with self._lock:
            parts = self._recv()
        self._settle()
        return parts

    def wait(self, queue: LinkQueue) -> list[bytes] | None:
        """Sleep until a direct link has a frame (returned), something is queued, or the host
        rings (a link change, the task stopping): returns None for those."""
        if not queue.arm(self.ring):
            return None  # queued meanwhile
        parts, ready = None, {}
        try:
            with self._lock:
                self._apply()
                ready = dict(self._poller.poll())
                if self._sub in ready:
                    parts = self._recv()
        finally:
            queue.disarm()
        if self._bell in ready:
            try:
                os.eventfd_read(self._bell)
            except BlockingIOError:
                pass
        self._settle()
        return parts

    def _recv(self) -> list[bytes] | None:
        if self._sub is None:
            return None
        try:
            return self._sub.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None

    def _settle(self) -> None:
        """Changes the host queued while we held the lock are applied now that we let it go."""
        while self._changes:
            with self._lock:
                self._apply()

    def _apply(self) -> None:  # with the lock held
        if self._state == _NEW:
            return  # kept for `open`
        while self._changes:
            linked, source, addr, applied = self._changes.popleft()
            if self._state == _OPEN and self._sub is not None:  # closed: nothing to change
                if linked:
                    self._sub.connect(addr)
                    self._sub.setsockopt(zmq.SUBSCRIBE, topic_of(source))
                else:
                    self._sub.setsockopt(zmq.UNSUBSCRIBE, topic_of(source))
                    try:
                        self._sub.disconnect(addr)
                    except zmq.ZMQError:
                        pass
            applied.set()
