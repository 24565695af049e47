"""In-process stand-ins for the hardening tests: a router that can stall and a link that records
pauses."""

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

