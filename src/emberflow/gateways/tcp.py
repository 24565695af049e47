"""TCP gateway: StackFlow clients on port 10001 (loopback by default)."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

from emberflow.gateways.connection import Connection, Link

if TYPE_CHECKING:
    from emberflow.sys.router import Router

log = logging.getLogger("emberflow.tcp")
MAX_UNSENT = 8 * 1024 * 1024  # a client that stops reading is disconnected, not buffered forever


class _Protocol(asyncio.Protocol, Link):
    can_hang_up = True

    def __init__(self, router: Router):
        self.router = router
        self.conn: Connection | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if len(self.router.conns) >= self.router.cfg.max_connections:
            log.warning("refusing connection: %d clients already", len(self.router.conns))
            transport.close()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one message per segment, now
        self.conn = Connection(self.router, self.router.new_conn_id(), "tcp", self._write, self.router.cfg.max_frame,
                               link=self, refuse_http=True)
        self.router.attach(self.conn)
        log.info("client %s connected as %d", transport.get_extra_info("peername"), self.conn.conn_id)

    def _write(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if t.get_write_buffer_size() > MAX_UNSENT:
            log.warning("client %d is not reading (%d bytes unsent): disconnecting", self.conn.conn_id,
                        t.get_write_buffer_size())
            t.close()
            return
        t.write(data)  # one write per message, as the real server does

    def hang_up(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()  # after the last message

    def pause_reading(self) -> None:  # the connection's inbox is full: TCP holds the client back
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.conn is not None:
            self.conn.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.conn.close()


async def start_tcp(router: Router, host: str, port: int) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Protocol(router), host, port, reuse_address=True)
