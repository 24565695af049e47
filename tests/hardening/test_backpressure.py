"""Issue 15 item 9: backpressure from TCP into sys. A connection's inbox of received, unhandled
bytes is bounded, and the transport stops reading while it is full, so a client sending faster
than sys (or a stalled unit) can handle is held back by TCP instead of filling sys's memory."""

from __future__ import annotations

import asyncio
import json
import select

from emberflow.gateways.connection import Connection
from emberflow.sys.config import Config
from hardening.fakes import CountingLink, FakeRouter
from hardening.wire import Wire, ping
from support import Server


def test_the_inbox_is_bounded_and_reading_pauses_while_sys_is_stalled():
    async def main():
        cfg = Config(max_inbox=64 * 1024)
        router = FakeRouter(cfg)
        router.gate.clear()  # the unit is stalled: the first request does not return
        link = CountingLink()
        conn = Connection(router, 1, "tcp", lambda data: None, cfg.max_frame, link=link)
        chunk = b"".join(json.dumps(ping(str(i))).encode() for i in range(100))
        fed = peak = 0
        while not link.paused and fed < 10_000:  # a transport stops delivering once paused
            conn.feed(chunk)
            fed += 1
            peak = max(peak, conn.inbox_bytes)
            await asyncio.sleep(0)
        assert link.paused and link.pauses == 1
        assert peak <= cfg.max_inbox + len(chunk)
        router.gate.set()
        for _ in range(10_000):
            if len(router.handled) == fed * 100:
                break
            await asyncio.sleep(0)
        assert len(router.handled) == fed * 100 and link.resumes == 1  # nothing lost once it moves again
        conn.close()

    asyncio.run(main())


def test_a_flood_while_a_unit_starts_is_held_back_by_tcp(tmp_path):
    """The setup waits for a unit process that takes seconds to start; meanwhile the client
    sends as fast as it can. The server stops reading, so the client's send blocks."""
    s = Server(tmp_path, config={"units": {"slowstart": "serving.slow_start_unit:SlowStartUnit"}})
    try:
        w = Wire(s.port)
        w.send({"request_id": "setup", "work_id": "slowstart", "action": "setup", "object": "slowstart.setup",
                "data": {}})
        frame = json.dumps({**ping("flood"), "data": "x" * 60_000}).encode()
        w.sock.setblocking(False)
        accepted, cap = 0, 256 * 1024 * 1024
        while accepted < cap:
            try:
                accepted += w.sock.send(frame)
            except BlockingIOError:
                if not select.select([], [w.sock], [], 1.0)[1]:
                    break  # nothing taken for a second: the server has stopped reading
        # kernel buffers (tcp_rmem allows 32 MiB on this machine) plus the 1 MiB inbox, not everything
        assert accepted < 96 * 1024 * 1024, f"{accepted} bytes accepted while sys was stalled"
    finally:
        s.stop()
