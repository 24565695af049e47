"""An in-process connection to the router, for gateways and flows that live in the sys daemon.

The HTTP gateway and the flow runner are clients like any TCP client: they speak StackFlow
requests to the router and read replies and task outputs, so units never learn who asked.

    conn = LocalConnection(router)
    work_id = (await conn.request("llm", "setup", "llm.setup", {...}))["work_id"]
    rid = await conn.infer(work_id, {"delta": "hi", "index": 0, "finish": True}, "llm.utf-8.stream")
    async for msg in conn.outputs(work_id, rid): ...
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import TYPE_CHECKING, Any, AsyncIterator

from emberflow.protocol.envelope import Request

if TYPE_CHECKING:
    from emberflow.sys.router import Router

_ids = itertools.count(1)


class LocalConnection:
    kind = "local"

    def __init__(self, router: Router, name: str = "local"):
        self.router = router
        self.conn_id = router.new_conn_id()
        self.authed = True  # in-process callers authenticate at their own edge (e.g. HTTP bearer token)
        self.uploads: dict[str, list[str]] = {}
        self.name = name
        self._waiters: dict[str, asyncio.Queue] = {}  # request_id -> messages carrying it
        self._output_units: dict[str, str] = {}  # inference request_id -> unit kind
        router.attach(self)

    # the router calls this for every reply and every output owned by this connection
    def send(self, msg: dict[str, Any], failed_request: str | None = None) -> None:
        q = self._waiters.get(msg.get("request_id", ""))
        if q is not None:
            q.put_nowait(msg)
            return
        if failed_request in self._output_units and failed_request in self._waiters:
            self._waiters[failed_request].put_nowait(msg)  # exactly the inference that failed
            return
        if msg.get("error", {}).get("code", 0) != 0:
            # Inference-data errors carry the last *control* request_id (StackFlow §3.4) and the
            # bare unit name: hand them to whoever waits on outputs of that unit.
            unit = str(msg.get("work_id", "")).split(".")[0]
            for rid, kind in list(self._output_units.items()):
                if kind == unit and rid in self._waiters:
                    self._waiters[rid].put_nowait(msg)

    def new_request_id(self) -> str:
        return f"{self.name}-{next(_ids)}"

    async def request(self, work_id: str, action: str, object: str = "None", data: Any = "None",
                      timeout: float = 120.0, payload: bytes | None = None) -> dict[str, Any]:
        """Send one control request and return its reply (errors are returned, not raised)."""
        rid = self.new_request_id()
        q = self._waiters[rid] = asyncio.Queue()
        try:
            await self.router.handle(self, Request(rid, work_id, action, object, data, payload), time.monotonic())
            return await asyncio.wait_for(q.get(), timeout)
        finally:
            self._waiters.pop(rid, None)

    async def infer(self, work_id: str, data: Any, object: str, payload: bytes | None = None,
                    rid: str | None = None) -> str:
        """Queue an inference; read its outputs with `outputs(work_id, rid)`. Chunks of one streamed
        input share one `rid`, so their outputs arrive on one reader."""
        rid = rid or self.new_request_id()
        self._waiters.setdefault(rid, asyncio.Queue())
        self._output_units[rid] = work_id.split(".")[0]
        await self.router.handle(self, Request(rid, work_id, "inference", object, data, payload), time.monotonic())
        return rid

    async def outputs(self, work_id: str, rid: str, timeout: float = 300.0) -> AsyncIterator[dict[str, Any]]:
        """Messages for one inference until its stream finishes (or its one whole message, or an error)."""
        q = self._waiters.setdefault(rid, asyncio.Queue())
        try:
            while True:
                msg = await asyncio.wait_for(q.get(), timeout)
                yield msg
                data = msg.get("data")
                if msg.get("error", {}).get("code", 0) != 0:
                    return
                if not (isinstance(data, dict) and "finish" in data) or data.get("finish"):
                    return
        finally:
            self._waiters.pop(rid, None)
            self._output_units.pop(rid, None)

    def close(self) -> None:
        self.router.detach(self)
