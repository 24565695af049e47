"""In-process stand-ins for the hardening tests: a router that can stall, a transport with a
write buffer the "client" drains, and a link that records pauses."""

from __future__ import annotations

import asyncio

from emberflow.gateways.connection import Link
from emberflow.sys.config import Config


class FakeRouter:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.conns: dict = {}
        self.handled: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    def new_conn_id(self) -> int:
        return 8000 + len(self.conns)

    def attach(self, conn) -> None:
        self.conns[conn.conn_id] = conn

    def detach(self, conn) -> None:
        self.conns.pop(conn.conn_id, None)

    async def handle(self, conn, req, received) -> None:
        await self.gate.wait()
        self.handled.append(req.request_id)


class CountingLink(Link):
    def __init__(self) -> None:
        self.paused = False
        self.pauses = self.resumes = 0

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False
        self.resumes += 1


class FakeTransport(asyncio.Transport):
    """Just enough of an asyncio transport: a write buffer the 'client' drains, water marks that
    call pause_writing/resume_writing as a real one does, and a record of every write()."""

    HIGH, LOW = 64 * 1024, 16 * 1024

    def __init__(self) -> None:
        super().__init__()
        self.protocol: asyncio.Protocol | None = None
        self.buffered = 0
        self.writes: list[int] = []
        self.data = bytearray()
        self.paused = False
        self.closing = False
        self.aborted = False
        self.closed = False
        self.peak = 0

    def write(self, data) -> None:
        self.writes.append(len(data))
        self.data += data
        self.buffered += len(data)
        self.peak = max(self.peak, self.buffered)
        if self.buffered > self.HIGH and not self.paused:
            self.paused = True
            self.protocol.pause_writing()

    def drain(self, n: int) -> None:
        self.buffered -= min(n, self.buffered)
        if self.paused and self.buffered <= self.LOW:
            self.paused = False
            self.protocol.resume_writing()

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = self.closed = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def get_extra_info(self, name, default=None):
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def tcp_protocol(cfg: Config):
    """The TCP gateway's protocol object on a FakeTransport."""
    from emberflow.gateways.tcp import _Protocol

    proto = _Protocol(FakeRouter(cfg), set())
    transport = FakeTransport()
    transport.protocol = proto
    proto.connection_made(transport)
    return proto, transport
