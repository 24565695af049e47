"""TCP gateway: StackFlow clients on port 10001 (loopback by default)."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

from emberflow.gateways.connection import Connection, Link
from emberflow.protocol.envelope import encode, error_reply
from emberflow.protocol.errors import Code, StackFlowError

if TYPE_CHECKING:
    from emberflow.sys.router import Router

log = logging.getLogger("emberflow.tcp")
MAX_UNSENT = 8 * 1024 * 1024  # a client that stops reading is disconnected, not buffered forever


class _Protocol(asyncio.Protocol, Link):
    can_hang_up = True

    def __init__(self, router: Router, clients: set[_Protocol]):
        self.router = router
        self.cfg = router.cfg
        self.clients = clients  # this server's live TCP clients (in-process connections are not counted)
        self.conn: Connection | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if len(self.clients) >= self.cfg.max_connections:
            log.warning("refusing a TCP client: %d clients already (max_connections)", len(self.clients))
            transport.write(encode(error_reply("0", "sys", StackFlowError(
                Code.NOT_AVAILABLE, detail=f"the server has {len(self.clients)} clients, its max_connections; "
                                           "try again later"))))
            transport.close()
            return
        self.clients.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one message per segment, now
        self.conn = Connection(self.router, self.router.new_conn_id(), "tcp", self._write, self.cfg.max_frame,
                               link=self, frame_timeout=self.cfg.frame_timeout, refuse_http=True)
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
        self.clients.discard(self)
        if self.conn is not None:
            self.conn.close()


async def start_tcp(router: Router, host: str, port: int) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    clients: set[_Protocol] = set()
    return await loop.create_server(lambda: _Protocol(router, clients), host, port, reuse_address=True)
