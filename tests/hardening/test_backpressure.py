"""Issue 15 item 9: backpressure from TCP into sys. A connection's inbox of received, unhandled
bytes is bounded, and the transport stops reading while it is full, so a client sending faster
than sys (or a stalled unit) can handle is held back by TCP instead of filling sys's memory."""

from __future__ import annotations

import json
import os
import select
import signal

import psutil

from hardening.wire import Wire, ping, tcp_queues, wait_until
from support import Server

ASYNCIO_READ = 256 * 1024  # the most an asyncio transport reads from a socket at once
FLOOD_CAP = 64 * 1024 * 1024  # more than the kernel's buffers can hold (tcp_rmem 32 MiB + tcp_wmem 4 MiB)


def test_the_inbox_is_bounded_and_reading_pauses_while_sys_is_stalled(tmp_path):
    """The connection's first request is a setup that waits for a unit process frozen while it
    starts (SIGSTOP), so every request behind it waits too; the client floods pings meanwhile.
    sys takes no more than its inbox out of the kernel: the rest stays in the socket buffers and
    the client's send blocks. Once the unit runs again every ping is answered: nothing is dropped."""
    max_inbox = 64 * 1024
    s = Server(
        tmp_path, config={"max_inbox": max_inbox, "units": {"slowstart": "serving.slow_start_unit:SlowStartUnit"}}
    )
    unit = None
    try:
        w = Wire(s.port, timeout=30)
        w.send(
            {"request_id": "setup", "work_id": "slowstart", "action": "setup", "object": "slowstart.setup", "data": {}}
        )
        unit = _unit_started(s, "slowstart")
        os.kill(unit, signal.SIGSTOP)  # it sleeps 4 s before it is ready: frozen well before that

        w.sock.setblocking(False)
        frames, tail, accepted = 0, b"", 0  # tail: the unsent rest of the frame being sent
        while accepted < FLOOD_CAP:
            if not tail:
                tail = json.dumps({**ping(f"f{frames}"), "data": "x" * 60_000}).encode()
                frames += 1
            try:
                n = w.sock.send(tail)
            except BlockingIOError:
                if not select.select([], [w.sock], [], 1.0)[1]:
                    break  # the kernel's buffers are full and nobody is emptying them
                continue
            accepted += n
            tail = tail[n:]

        # Every byte the client's send() accepted is unacknowledged at the client, unread at the
        # server, or read by sys: the kernel's counters say how much sys took.
        me = w.sock.getsockname()[1]
        unacked, unread = tcp_queues(me, s.port)[0], tcp_queues(s.port, me)[1]
        taken = accepted - unacked - unread
        # the chunk holding the setup, plus an inbox that may overshoot by one read before it pauses
        assert taken <= max_inbox + 2 * ASYNCIO_READ, f"sys read {taken} of {accepted} bytes while stalled"
        assert accepted < FLOOD_CAP

        os.kill(unit, signal.SIGCONT)
        unit = None
        w.sock.settimeout(30)
        w.sock.sendall(tail)  # the rest of the frame the flood stopped in
        replies = {m["request_id"]: m["error"]["code"] for m in (w.message() for _ in range(frames + 1))}
        assert replies == {"setup": 0, **{f"f{i}": 0 for i in range(frames)}}
    finally:
        if unit is not None:
            os.kill(unit, signal.SIGCONT)
        s.stop()


def _unit_started(server: Server, kind: str) -> int:
    pid: list[int] = []

    def started() -> bool:
        try:
            pid.append(server.unit_pid(kind))
        except (LookupError, psutil.Error):
            return False
        return True

    assert wait_until(started), f"no {kind} unit process"
    return pid[0]
