"""An in-process connection to the router, for gateways and flows that live in the sys daemon.

The HTTP gateway, the flow runner and sys's own policies are clients like any TCP client: they
speak StackFlow requests to the router and read replies and task outputs, so units never learn
who asked. Unlike a wire client they get each message with its `Delivery` (the request it
answers, a machine-readable reason) and are told when a request is fully answered.

    conn = LocalConnection(router, "http")
    work_id = (await conn.request("llm", "setup", "llm.setup", {...}))["work_id"]
    rid = await conn.infer(work_id, {"delta": "hi", "index": 0, "finish": True}, "llm.utf-8.stream")
    async for msg in conn.outputs(work_id, rid): ...
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from emberflow.gateways.base import Delivery, RequestHandler
from emberflow.protocol.envelope import Request
from emberflow.protocol.errors import Reason

_ids = itertools.count(1)


class _Done:
    """Put in a request's queue once it is fully answered."""


DONE = _Done()


class LocalConnection:
    kind = "local"

    def __init__(
        self,
        router: RequestHandler,
        name: str = "local",
        principal: str | None = None,
        unsolicited: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.router = router
        self._unsolicited = unsolicited  # gets what no request of ours waits for (a flow's output)
        self.conn_id = router.new_conn_id()
        self.authed = True  # in-process callers authenticate at their own edge (e.g. HTTP bearer token)
        self.uploads: dict[str, Any] = {}
        self.peer: str | None = None  # (sys actions that throttle by client address)
        self.auth_failures = 0
        self.name = name
        self.principal = principal or f"local:{name}"
        self._waiters: dict[str, asyncio.Queue[Any]] = {}  # request_id -> messages answering it
        router.attach(self)

    # the router calls these for every message owned by this connection
    def send(self, msg: dict[str, Any], delivery: Delivery | None = None) -> None:
        rid = delivery.request_id if delivery is not None and delivery.request_id else msg.get("request_id", "")
        q = self._waiters.get(rid)
        if q is None:
            if self._unsolicited is not None:
                self._unsolicited(msg)
            return  # else nobody waits for it any more (a cancelled request, a timed-out reader)
        if delivery is not None and delivery.reason is not None:
            # in-process readers decide by the reason (`error.reason`), never by the message text
            msg = {**msg, "error": {**msg.get("error", {}), "reason": delivery.reason.value}}
        q.put_nowait(msg)

    def request_done(self, request_id: str) -> None:
        q = self._waiters.get(request_id)
        if q is not None:
            q.put_nowait(DONE)

    def new_request_id(self) -> str:
        return f"{self.name}-{next(_ids)}"

    @staticmethod
    def reason(msg: dict[str, Any]) -> Reason | None:
        """Why an error reply this connection received happened (None: its code says it)."""
        value = msg.get("error", {}).get("reason")
        return Reason(value) if value is not None else None

    async def request(
        self,
        work_id: str,
        action: str,
        object: str = "None",
        data: Any = "None",
        timeout: float = 120.0,
        payload: bytes | None = None,
    ) -> dict[str, Any]:
        """Send one control request and return its reply (errors are returned, not raised)."""
        rid = self.new_request_id()
        q = self._waiters[rid] = asyncio.Queue()
        try:
            await self.router.handle(self, Request(rid, work_id, action, object, data, payload), time.monotonic())
            while True:
                msg = await asyncio.wait_for(q.get(), timeout)
                if msg is not DONE:
                    return msg
        finally:
            self._waiters.pop(rid, None)

    async def infer(
        self, work_id: str, data: Any, object: str, payload: bytes | None = None, rid: str | None = None
    ) -> str:
        """Queue an inference; read its outputs with `outputs(work_id, rid)`. Chunks of one streamed
        input share one `rid`, so their outputs arrive on one reader."""
        rid = rid or self.new_request_id()
        self._waiters.setdefault(rid, asyncio.Queue())
        await self.router.handle(self, Request(rid, work_id, "inference", object, data, payload), time.monotonic())
        return rid

    async def outputs(self, work_id: str, rid: str, timeout: float = 300.0) -> AsyncIterator[dict[str, Any]]:
        """Messages answering one inference, until it is fully answered (or an error)."""
        q = self._waiters.setdefault(rid, asyncio.Queue())
        try:
            while True:
                msg = await asyncio.wait_for(q.get(), timeout)
                if msg is DONE:
                    return
                yield msg
                if msg.get("error", {}).get("code", 0) != 0:
                    return
        finally:
            self._waiters.pop(rid, None)

    def cancel(self, work_id: str, rid: str) -> None:
        """Give request `rid` up: the unit stops it, queued or running; its output is dropped."""
        self._waiters.pop(rid, None)
        self.router.cancel(self, work_id, rid)

    def hang_up(self, final: dict[str, Any] | None = None) -> bool:
        return False  # an in-process client is never disconnected by sys

    async def writable(self) -> None:
        pass  # messages are queued in memory for their reader

    def close(self) -> None:
        self.router.detach(self)
