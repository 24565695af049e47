"""One client connection speaking the StackFlow protocol, whatever carries the bytes.

TCP and UART differ only in how bytes arrive and leave; both feed `Connection.feed` and hand a
`write` callable, plus a `Link` for what the transport can do besides writing (pause reading,
hang up). Requests from one connection are handled in order, as the original's mutex does.

Received bytes wait in a bounded inbox until the connection's worker decodes and handles them:
past `max_inbox` bytes the transport stops reading, so a client that sends faster than sys (or a
stalled unit) handles is slowed down by TCP itself instead of filling sys's memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from emberflow.gateways.base import WIRE_PRINCIPAL, Delivery, PendingUpload, RequestHandler
from emberflow.protocol.envelope import encode, error_reply, notice, parse_request
from emberflow.protocol.errors import Code, StackFlowError
from emberflow.protocol.framing import (
    HTTP_SNIFF_BYTES,
    Frame,
    FrameDecoder,
    Malformed,
    Oversize,
    StrayBrace,
    has_lone_surrogate,
    looks_like_http,
)

log = logging.getLogger("emberflow.gateway")


class Link:
    """What a byte transport can do besides writing. These defaults suit a serial line: it cannot
    hang up, and its reader pauses by itself when told to."""

    can_hang_up = False

    def hang_up(self) -> None:
        """Close the transport after what is already queued (no-op when it cannot)."""

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    async def writable(self) -> None:
        """Return once the client has taken most of what was sent (bounded sends, e.g. sys.pull)."""


class Connection:
    def __init__(
        self,
        router: RequestHandler,
        conn_id: int,
        kind: str,
        write: Callable[[bytes], None],
        max_frame: int,
        *,
        link: Link | None = None,
        frame_timeout: float | None = None,
        refuse_http: bool = False,
        peer: str | None = None,
    ):
        self.router = router
        self.conn_id = conn_id
        self.kind = kind  # "tcp" | "uart"
        self.peer = peer  # the client's address, when the transport has one (auth throttling)
        self._write = write
        self.link = link or Link()
        self.decoder = FrameDecoder(max_frame)
        self.authed = not router.cfg.auth_required
        # Who this client is, for task ownership: StackFlow clients are one principal (the device
        # trusts its wire, a client that reconnects drives its tasks) until sys.auth names another.
        self.principal = WIRE_PRINCIPAL
        self.auth_failures = 0  # wrong sys.auth tokens on this connection
        self.uploads: dict[str, PendingUpload] = {}  # sys.push streams in progress, by target path
        self.max_inbox = router.cfg.max_inbox
        self._chunks: deque[tuple[bytes, float]] = deque()  # received, not yet decoded: (bytes, arrival time)
        self._backlog = 0  # bytes in _chunks
        self._arrived = asyncio.Event()
        self._reading_paused = False
        # The first bytes are held until they show whether this is HTTP (a browser on the StackFlow port).
        self._sniff: bytearray | None = bytearray() if refuse_http else None
        self.frame_timeout = frame_timeout  # None: a frame may take as long as it likes (a serial line)
        self._frame_since: float | None = None  # arrival of the frame still incomplete, if any
        self._frame_timer: asyncio.TimerHandle | None = None
        self.closed = False  # nothing more is sent
        self._released = False
        self._worker = asyncio.create_task(self._serve())

    def feed(self, data: bytes) -> None:
        if self.closed or not data:
            return
        self._chunks.append((data, time.monotonic()))
        self._backlog += len(data)
        if self._backlog >= self.max_inbox and not self._reading_paused:
            self._reading_paused = True
            self.link.pause_reading()
        self._arrived.set()

    def send(self, msg: dict[str, Any], delivery: Delivery | None = None) -> None:
        if not self.closed:  # (wire clients match replies as StackFlow says; `delivery` is for in-process ones)
            self._write(encode(msg))

    def request_done(self, request_id: str) -> None:
        pass  # StackFlow clients read the end of an answer from its messages

    async def writable(self) -> None:
        """Wait until the client has read most of what was sent to it (or the connection is gone)."""
        if not self.closed:
            await self.link.writable()

    def hang_up(self, final: dict[str, Any] | None = None) -> bool:
        """Send `final`, then close the transport: for a client that must not be served further.
        Returns False, sending nothing, when the transport cannot hang up (a serial line)."""
        if not self.link.can_hang_up:
            return False
        if final is not None:
            self.send(final)
        self.closed = True  # replies to requests still queued would never be read
        self.link.hang_up()
        return True

    async def _serve(self) -> None:
        while True:
            while not self._chunks:
                self._arrived.clear()
                await self._arrived.wait()
            data, received = self._chunks.popleft()
            self._backlog -= len(data)
            if self._reading_paused and self._backlog <= self.max_inbox // 2:
                self._reading_paused = False
                self.link.resume_reading()
            if self._sniff is not None:
                data = self._past_http_check(data)
            events = self.decoder.feed(data) if data else []
            self._watch_frame(bool(events), received)
            for event in events:
                if self.closed:
                    return
                try:
                    await self._dispatch(event, received)
                except Exception:  # the server stays up whatever one request does
                    log.exception("connection %s: request failed", self.conn_id)
                    self.send(error_reply("0", "sys", StackFlowError(Code.JSON_FORMAT, detail="internal error")))

    async def _dispatch(self, event: Any, received: float) -> None:
        if isinstance(event, StrayBrace):
            self.send(notice(Code.FRAMING_RESET, "reace reset"))
        elif isinstance(event, Malformed):
            self.send(error_reply("0", "sys", StackFlowError(Code.JSON_FORMAT, detail="raw newline inside a string")))
        elif isinstance(event, Oversize):
            detail = f"frame of {event.size} bytes exceeds the {event.limit}-byte limit"
            if event.raw:
                # Staying in sync would mean discarding every byte the header announced (10^12 of
                # them, if it says so): the client is told, then disconnected where possible.
                reply = error_reply("0", "sys", StackFlowError(Code.JSON_FORMAT, detail=detail + "; disconnecting"))
                if self.hang_up(reply):
                    return
            self.send(error_reply("0", "sys", StackFlowError(Code.JSON_FORMAT, detail=detail)))
        elif isinstance(event, Frame):
            try:
                if has_lone_surrogate(event.text):  # it would fail later, in a reply or a unit
                    raise StackFlowError(
                        Code.JSON_FORMAT,
                        detail="a string holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff): not Unicode text",
                    )
                obj = json.loads(event.text.decode("utf-8"))  # StackFlow is UTF-8; never guess UTF-16/32
                req = parse_request(obj, event.payload)
            except (ValueError, RecursionError):
                self.send(error_reply("0", "sys", StackFlowError(Code.JSON_FORMAT)))
                return
            except StackFlowError as e:
                self.send(error_reply("0", "sys", e))
                return
            await self.router.handle(self, req, received)

    # --- HTTP on the StackFlow port ------------------------------------------------------------
    def _past_http_check(self, data: bytes) -> bytes:
        """The bytes to decode: nothing while the first bytes could still start an HTTP request,
        then all of them once they cannot. An HTTP request is answered 400 and the connection closed,
        so a web page cannot drive the daemon (a text/plain POST would otherwise run its JSON body)."""
        assert self._sniff is not None
        self._sniff += data
        verdict = looks_like_http(bytes(self._sniff[:HTTP_SNIFF_BYTES]))
        if verdict is None:
            return b""
        first, self._sniff = bytes(self._sniff), None
        if not verdict:
            return first
        log.warning("client %s spoke HTTP to the StackFlow port: answered 400 and disconnected", self.conn_id)
        body = encode(
            error_reply(
                "0",
                "sys",
                StackFlowError(
                    Code.JSON_FORMAT,
                    detail="this port speaks the StackFlow JSON protocol, not HTTP; the HTTP gateway "
                    "(OpenAI, KServe) listens on its own port (http_port)",
                ),
            )
        )
        head = (
            f"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        self._write(head + body)
        self.closed = True
        self.link.hang_up()
        return b""

    # --- partial frames ---------------------------------------------------------------------------
    def _watch_frame(self, ended_some: bool, received: float) -> None:
        """Track how long the frame being received has been incomplete. A client gets
        `frame_timeout` seconds for each frame, however it trickles the bytes, so idle sockets
        sending one byte a second cannot hold connection slots forever."""
        if not (self.decoder.in_frame or self._sniff):
            self._frame_since = None
            return
        if ended_some or self._frame_since is None:  # the frame still open began in this chunk
            self._frame_since = received
        if self.frame_timeout is not None and self._frame_timer is None:
            self._frame_timer = asyncio.get_running_loop().call_later(self.frame_timeout, self._frame_overdue)

    def _frame_overdue(self) -> None:
        self._frame_timer = None
        if self.closed or self._frame_since is None or self.frame_timeout is None:
            return
        if self._chunks:  # bytes wait for us (a slow request ahead), not for the client: look later
            wait = self.frame_timeout
        else:
            wait = self._frame_since + self.frame_timeout - time.monotonic()
            if wait <= 0:
                log.warning(
                    "client %s left a frame unfinished for %.0f s: disconnecting", self.conn_id, self.frame_timeout
                )
                self.hang_up(
                    error_reply(
                        "0",
                        "sys",
                        StackFlowError(
                            Code.JSON_FORMAT,
                            detail=f"incomplete frame: no complete JSON object within "
                            f"{self.frame_timeout:g} s (frame_timeout); disconnecting",
                        ),
                    )
                )
                return
        self._frame_timer = asyncio.get_running_loop().call_later(wait, self._frame_overdue)

    def close(self) -> None:
        self.closed = True
        if self._released:
            return
        self._released = True
        self._worker.cancel()
        if self._frame_timer is not None:
            self._frame_timer.cancel()
        for upload in self.uploads.values():
            upload.discard()  # an unfinished upload's partial file goes with its connection
        self.uploads.clear()
        self._chunks.clear()
        self.router.detach(self)
        self.link.hang_up()
