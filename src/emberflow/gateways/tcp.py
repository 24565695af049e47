"""TCP gateway: StackFlow clients on port 10001 (loopback by default).

Outgoing messages go to the transport one write per message, as the real server does. A message
bigger than `WRITE_SLICE` is handed over in slices as the client reads, so the transport never holds
a whole huge message; a client that stops reading is aborted (`max_unsent` queued, or nothing taken
for `send_timeout` seconds) rather than closed, because close() would wait forever to flush.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from typing import TYPE_CHECKING

from emberflow.gateways.connection import Connection, Link
from emberflow.protocol.envelope import encode, error_reply
from emberflow.protocol.errors import Code, StackFlowError

if TYPE_CHECKING:
    from emberflow.gateways.base import RequestHandler

log = logging.getLogger("emberflow.tcp")
WRITE_SLICE = 64 * 1024  # the most of one message the transport is given at a time


class _Protocol(asyncio.Protocol, Link):
    can_hang_up = True

    def __init__(self, router: RequestHandler, clients: set[_Protocol]):
        self.router = router
        self.cfg = router.cfg
        self.clients = clients  # this server's live TCP clients (in-process connections are not counted)
        self.conn: Connection | None = None
        self.transport: asyncio.Transport | None = None
        self._outbox: deque[memoryview] = deque()  # slices of big messages the transport has not taken yet
        self._queued = 0  # bytes in _outbox
        self._writing_paused = False
        self._drained = asyncio.Event()
        self._drained.set()
        self._stall: asyncio.TimerHandle | None = None  # aborts a client that takes nothing for send_timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if len(self.clients) >= self.cfg.max_connections:
            log.warning("refusing a TCP client: %d clients already (max_connections)", len(self.clients))
            transport.write(
                encode(
                    error_reply(
                        "0",
                        "sys",
                        StackFlowError(
                            Code.NOT_AVAILABLE,
                            detail=f"the server has {len(self.clients)} clients, its max_connections; try again later",
                        ),
                    )
                )
            )
            transport.close()
            return
        self.clients.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one message per segment, now
        peer = transport.get_extra_info("peername")
        self.conn = Connection(
            self.router,
            self.router.new_conn_id(),
            "tcp",
            self._write,
            self.cfg.max_frame,
            link=self,
            frame_timeout=self.cfg.frame_timeout,
            refuse_http=True,
            peer=str(peer[0]) if isinstance(peer, tuple) and peer else None,
        )
        self.router.attach(self.conn)
        log.info("client %s connected as %d", peer, self.conn.conn_id)

    # --- writing ------------------------------------------------------------------------------
    def _unsent(self) -> int:
        """Bytes waiting for the client, leaving out the rest of the message being handed over: it
        moves as the client reads (send_timeout catches a client that stops in the middle of it),
        so a message bigger than max_unsent does not make a reading client look like a stopped one."""
        behind = self._queued - (len(self._outbox[0]) if self._outbox else 0)
        return behind + (self.transport.get_write_buffer_size() if self.transport is not None else 0)

    def _write(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if self._unsent() > self.cfg.max_unsent:
            self._abort(f"is not reading ({self._unsent()} bytes unsent, max_unsent {self.cfg.max_unsent})")
            return
        if not self._outbox and not self._writing_paused and len(data) <= WRITE_SLICE:
            t.write(data)  # the usual case: one write per message
            return
        self._outbox.append(memoryview(data))
        self._queued += len(data)
        self._pump()

    def _pump(self) -> None:
        t = self.transport
        while self._outbox and not self._writing_paused and t is not None and not t.is_closing():
            head = self._outbox[0]
            piece = head[:WRITE_SLICE]
            if len(head) > WRITE_SLICE:
                self._outbox[0] = head[WRITE_SLICE:]
            else:
                self._outbox.popleft()
            self._queued -= len(piece)
            t.write(piece)  # may call pause_writing() at once
        if not self._outbox and not self._writing_paused:
            self._drained.set()
        else:
            self._drained.clear()

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._drained.clear()
        if self._stall is None:
            self._stall = asyncio.get_running_loop().call_later(
                self.cfg.send_timeout, self._abort, f"took nothing for {self.cfg.send_timeout:g} s (send_timeout)"
            )

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        self._pump()

    async def writable(self) -> None:
        await self._drained.wait()

    def _abort(self, why: str) -> None:
        """Drop a client at once, discarding what it did not read (close() would wait for it)."""
        t = self.transport
        if t is None:
            return
        self._stall = None
        log.warning("client %s %s: disconnecting", self.conn.conn_id if self.conn else "?", why)
        self._outbox.clear()
        self._queued = 0
        t.abort()

    # --- Link -----------------------------------------------------------------------------------
    def hang_up(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if self._outbox:  # a client this far behind would not get the last message anyway
            self._abort("was far behind when hung up")
            return
        t.close()  # flushes the last message; a client that never reads it is aborted by the timer
        if self._stall is None:
            self._stall = asyncio.get_running_loop().call_later(
                self.cfg.send_timeout, self._abort, "did not read its last message"
            )

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # --- reading ------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.conn is not None:
            self.conn.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.clients.discard(self)
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        self._outbox.clear()
        self._queued = 0
        self._drained.set()  # a pull waiting to send more gives up (the connection is closed)
        if self.conn is not None:
            self.conn.close()


async def start_tcp(router: RequestHandler, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    clients: set[_Protocol] = set()
    return await loop.create_server(lambda: _Protocol(router, clients), host, port, reuse_address=True)
