"""One client connection speaking the StackFlow protocol, whatever carries the bytes.

TCP and UART differ only in how bytes arrive and leave; both feed `Connection.feed` and hand a
`write` callable. Requests from one connection are handled in order, as the original's mutex does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Callable

from emberflow.protocol.envelope import encode, error_reply, notice, parse_request
from emberflow.protocol.errors import Code, StackFlowError
from emberflow.protocol.framing import Frame, FrameDecoder, Malformed, Oversize, StrayBrace

from emberflow.gateways.base import WIRE_PRINCIPAL, Delivery, RequestHandler

log = logging.getLogger("emberflow.gateway")


class Connection:
    def __init__(self, router: RequestHandler, conn_id: int, kind: str, write: Callable[[bytes], None],
                 max_frame: int):
        self.router = router
        self.conn_id = conn_id
        self.kind = kind  # "tcp" | "uart"
        self._write = write
        self.decoder = FrameDecoder(max_frame)
        self.authed = not router.cfg.auth_required
        # Who this client is, for task ownership: StackFlow clients are one principal (the device
        # trusts its wire, a client that reconnects drives its tasks) until sys.auth names another.
        self.principal = WIRE_PRINCIPAL
        self.uploads: dict[str, list[str]] = {}  # sys.push streams in progress
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._serve())
        self.closed = False

    def feed(self, data: bytes) -> None:
        received = time.monotonic()
        for event in self.decoder.feed(data):
            self._inbox.put_nowait((event, received))

    def send(self, msg: dict[str, Any], delivery: Delivery | None = None) -> None:
        if not self.closed:  # (wire clients match replies as StackFlow says; `delivery` is for in-process ones)
            self._write(encode(msg))

    def request_done(self, request_id: str) -> None:
        pass  # StackFlow clients read the end of an answer from its messages

    async def _serve(self) -> None:
        while True:
            event, received = await self._inbox.get()
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
            self.send(error_reply("0", "sys", StackFlowError(
                Code.JSON_FORMAT, detail=f"frame of {event.size} bytes exceeds the {event.limit}-byte limit")))
        elif isinstance(event, Frame):
            try:
                obj = json.loads(event.text.decode("utf-8"))  # StackFlow is UTF-8; never guess UTF-16/32
                req = parse_request(obj, event.payload)
            except (ValueError, RecursionError):
                self.send(error_reply("0", "sys", StackFlowError(Code.JSON_FORMAT)))
                return
            except StackFlowError as e:
                self.send(error_reply("0", "sys", e))
                return
            await self.router.handle(self, req, received)

    def close(self) -> None:
        self.closed = True
        self._worker.cancel()
        self.router.detach(self)
