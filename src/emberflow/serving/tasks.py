"""How the HTTP gateway reaches units: as a client of the router, never by importing them.

One `LocalConnection` carries every HTTP request. Tasks are set up on first use and reused: a
task is keyed by its unit kind and setup parameters, so `/v1/chat/completions` for one model
always lands on the same warm `llm.N` task. Requests to one task run one after another inside
the unit; `max_inflight` bounds how many may wait there, and the gateway answers 429 beyond it
instead of letting queues grow without limit.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, AsyncIterator

from emberflow.gateways.local import LocalConnection
from emberflow.serving.batching import Batcher, BatchPolicy

if TYPE_CHECKING:
    from emberflow.sys.router import Router

# StackFlow codes that mean "the task is gone" (unit restarted, sys.reset): set it up again.
TASK_GONE = {-4, -6}


class GatewayError(Exception):
    """A failure the HTTP layer turns into a status code and an error body."""

    def __init__(self, status: int, message: str, *, type: str = "server_error", code: str | None = None,
                 param: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.retry_after = retry_after


def unit_error(msg: dict[str, Any]) -> GatewayError:
    """Turn a StackFlow error reply into an HTTP error with the unit's own reason."""
    err = msg.get("error", {})
    code = int(err.get("code", -11))
    data = msg.get("data")
    detail = data.get("detail") if isinstance(data, dict) else None
    text = f"{err.get('message', '')} ({detail})" if detail else str(err.get("message", ""))
    if code in (-22, -2, -23, -24, -25):  # parameter, JSON, base64, empty data, stream index
        return GatewayError(400, text, type="invalid_request_error", code=f"stackflow_{-code}")
    if code == -21:
        return GatewayError(429, text, type="rate_limit_error", code="task_full", retry_after=1)
    if code in (-5, -9, -10):
        return GatewayError(503, text, type="server_error", code=f"stackflow_{-code}", retry_after=2)
    return GatewayError(500, text, type="server_error", code=f"stackflow_{-code}")


class _Slot:
    def __init__(self) -> None:
        self.work_id: str | None = None
        self.lock = asyncio.Lock()
        self.inflight = 0


class UnitTasks:
    def __init__(self, router: "Router", max_inflight: int = 32):
        self.router = router
        self.conn = LocalConnection(router, "http")
        self.max_inflight = max_inflight
        self._slots: dict[str, _Slot] = {}
        self.loading: set[str] = set()  # task keys being set up (health answers 503 meanwhile)
        self._background: set[asyncio.Future] = set()

    def queue_depth(self) -> dict[str, int]:
        return {key.split("|", 1)[0]: slot.inflight for key, slot in self._slots.items()}

    async def _work_id(self, kind: str, params: dict[str, Any], key: str) -> str:
        slot = self._slots.setdefault(key, _Slot())
        async with slot.lock:
            if slot.work_id is not None:
                return slot.work_id
            self.loading.add(key)
            try:
                reply = await self.conn.request(kind, "setup", f"{kind}.setup", params)
            finally:
                self.loading.discard(key)
            if reply.get("error", {}).get("code", 0) != 0:
                err = unit_error(reply)
                if err.status == 500:
                    err.status = 503  # a model that failed to load: the service is unavailable
                raise err
            slot.work_id = reply["work_id"]
            return slot.work_id

    async def stream(self, kind: str, params: dict[str, Any], data: Any, object: str,
                     payload: bytes | None = None, timeout: float = 300.0) -> AsyncIterator[dict[str, Any]]:
        """Outputs of one inference on the shared task for (kind, params). Errors raise GatewayError."""
        key = f"{kind}|{json.dumps(params, sort_keys=True)}"
        slot = self._slots.setdefault(key, _Slot())
        if slot.inflight >= self.max_inflight:
            raise GatewayError(429, f"{kind}: {slot.inflight} requests are already waiting for this model; "
                                    "retry later or send fewer concurrent requests",
                               type="rate_limit_error", code="queue_full", retry_after=1)
        slot.inflight += 1
        finished = False
        work_id = None
        try:
            for attempt in (0, 1):
                work_id = await self._work_id(kind, params, key)
                rid = await self.conn.infer(work_id, data, object, payload)
                first = True
                async for msg in self.conn.outputs(work_id, rid, timeout=timeout):
                    if msg.get("error", {}).get("code", 0) != 0:
                        code = msg["error"]["code"]
                        if first and attempt == 0 and (code in TASK_GONE or "is gone" in json.dumps(msg)):
                            slot.work_id = None  # the unit restarted: set the task up again, once
                            break
                        finished = True
                        raise unit_error(msg)
                    first = False
                    yield msg
                else:
                    finished = True
                    return
        except asyncio.TimeoutError:
            raise GatewayError(504, f"{kind} produced no output for {timeout:.0f} s",
                               type="server_error", code="timeout") from None
        finally:
            slot.inflight -= 1
            if not finished and work_id is not None and slot.inflight == 0:
                # The client went away mid-answer and nobody else waits on this task: stop the work
                # (`pause` aborts generation at once) instead of computing an answer nobody reads.
                task = asyncio.ensure_future(self.conn.request(work_id, "pause", timeout=10))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def run(self, kind: str, params: dict[str, Any], data: Any, object: str,
                  payload: bytes | None = None, timeout: float = 300.0) -> list[dict[str, Any]]:
        return [m async for m in self.stream(kind, params, data, object, payload, timeout)]

    async def close(self) -> None:
        for slot in self._slots.values():
            if slot.work_id is not None:
                try:
                    await self.conn.request(slot.work_id, "exit", timeout=5)
                except Exception:  # the daemon is shutting down anyway
                    pass
        self.conn.close()


class TextBatcher(Batcher):
    """Dynamic batching of text lists sent to a unit: concurrent requests become one inference
    with all their texts (`{"texts": [...]}`), and each request gets its own rows back."""

    def __init__(self, tasks: UnitTasks, kind: str, params: dict[str, Any], *, label: str, metrics: Any,
                 policy: BatchPolicy | None = None):
        def on_batch(rows: int, seconds: float) -> None:
            metrics.batch_size.labels(label).observe(rows)
            metrics.inference_seconds.labels(label).observe(seconds)

        super().__init__(lambda inputs: inputs, policy or BatchPolicy(max_batch_size=64, max_queue_delay_ms=1.0,
                                                                      instances=1, max_queue=256, timeout_s=60.0),
                         batchable=True, on_batch=on_batch)
        self.tasks, self.kind, self.params = tasks, kind, params

    def rows(self, inputs: list) -> int:
        return len(inputs[0])

    def compatible(self, a: list, b: list) -> bool:
        return True

    def concat(self, requests: list[list]) -> list:
        return [[text for r in requests for text in r[0]]]

    def take(self, outputs: list, start: int, rows: int) -> list:
        return [o[start:start + rows] for o in outputs]

    async def call(self, inputs: list) -> list:
        msgs = await self.tasks.run(self.kind, self.params, {"texts": inputs[0]}, f"{self.kind}.json")
        out = msgs[-1]["data"] if msgs else None
        if not isinstance(out, dict) or "embeddings" not in out:
            raise GatewayError(500, f"the {self.kind} unit returned no embeddings")
        return [out["embeddings"], out.get("tokens_per_text") or [0] * len(inputs[0])]
