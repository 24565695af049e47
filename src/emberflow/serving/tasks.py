"""How the HTTP gateway reaches units: as a client of the router, never by importing them.

One `LocalConnection` carries every HTTP request. Tasks are set up on first use and reused, in
a pool per unit kind and setup parameters, so `/v1/chat/completions` for one model always lands
on a warm `llm.N` task. Requests to one task run one after another inside the unit, so a pool
may hold several tasks (`instances` in the config, capped by the unit's `max_tasks`): a second
one is set up only when a request arrives while every task is busy, each request goes to the
least-busy task, and a surplus task idle for `idle_release_s` is exited again. `max_inflight`
bounds how many requests may wait per model; the gateway answers 429 beyond it instead of
letting queues grow without limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

from emberflow.gateways.local import LocalConnection
from emberflow.serving.batching import Batcher, BatchPolicy

if TYPE_CHECKING:
    from emberflow.sys.router import Router

log = logging.getLogger("emberflow.serving.tasks")

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


class _Instance:
    """One warm task (`llm.1002`) of a pool: a model instance of its own in the unit process."""

    def __init__(self) -> None:
        self.work_id: str | None = None
        self.lock = asyncio.Lock()  # one setup at a time
        self.inflight = 0  # requests waiting or running on this task
        self.loading = False  # being set up (health answers 503 meanwhile)
        self.error: GatewayError | None = None  # its setup failed: take no new requests, drop when idle
        self.idle: asyncio.TimerHandle | None = None  # surplus instance: released when this fires
        self.last_used = 0.0  # monotonic; the least recently used idle task is evicted first


class _Pool:
    """The tasks serving one (unit kind, setup params) key: up to `size`, set up on demand."""

    def __init__(self, kind: str, params: dict[str, Any], size: int):
        self.kind, self.params, self.size = kind, params, size
        self.model = str(params.get("model") or kind)  # the metrics label
        self.instances: list[_Instance] = []
        self.setup_lock = asyncio.Lock()  # one model load at a time: the first task loads at full speed
        self.grow_after = 0.0  # monotonic time; an extra task was refused, don't ask again before it

    @property
    def inflight(self) -> int:
        return sum(i.inflight for i in self.instances)

    def healthy(self) -> list[_Instance]:
        return [i for i in self.instances if i.error is None]

    def pick(self, grow: bool = True) -> _Instance | None:
        """The least-busy task (the first on ties, so surplus tasks idle out); a new one when every
        task is busy and the pool may still grow."""
        healthy = self.healthy()
        best = min(healthy, key=lambda i: i.inflight, default=None)
        if grow and (best is None or (best.inflight > 0 and len(healthy) < self.size
                                      and time.monotonic() >= self.grow_after)):
            best = _Instance()
            self.instances.append(best)
        return best


class UnitTasks:
    """Pools of warm tasks per (unit kind, setup params), shared by every HTTP request."""

    grow_retry_s = 10.0  # after a unit refused an extra task (-21, e.g. StackFlow clients hold it)

    def __init__(self, router: "Router", max_inflight: int = 32,
                 instances: Callable[[str], int] | None = None):
        self.router = router
        self.conn = LocalConnection(router, "http")
        self.max_inflight = max_inflight  # per model (all its tasks together); 429 beyond it
        self.instances = instances or (lambda kind: 1)  # tasks per model, by unit kind
        self._pools: dict[str, _Pool] = {}
        self._background: set[asyncio.Future] = set()
        # A surplus task (beyond the first) idle this long is exited, freeing the unit's slot.
        self.idle_release_s = float(os.environ.get("EMBERFLOW_IDLE_RELEASE_S", "30"))

    def _pool(self, kind: str, params: dict[str, Any]) -> _Pool:
        key = f"{kind}|{json.dumps(params, sort_keys=True)}"
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(kind, params, max(1, self.instances(kind)))
        return pool

    def loading(self) -> list[str]:
        """Tasks being set up, as `kind model` (health answers 503 meanwhile)."""
        return [f"{p.kind} {p.model}" for p in self._pools.values() for i in p.instances if i.loading]

    def _per_model(self, count: Callable[[_Pool], int]) -> dict[str, int]:
        """A count summed over each model's pools (all its setup params together)."""
        out: dict[str, int] = {}
        for p in self._pools.values():
            out[p.model] = out.get(p.model, 0) + count(p)
        return out

    def queue_depth(self) -> dict[str, int]:
        """Requests waiting or running, per model."""
        return self._per_model(lambda p: p.inflight)

    def live_instances(self) -> dict[str, int]:
        """Warm tasks, per model."""
        return self._per_model(lambda p: sum(1 for i in p.instances if i.work_id is not None))

    def forget(self, kind: str) -> None:
        """Every task of `kind` is gone (its process died, or sys.reset): idle instances are
        dropped; busy ones keep their place and set a task up again on their retry."""
        for pool in self._pools.values():
            if pool.kind != kind:
                continue
            for inst in list(pool.instances):
                inst.work_id = None
                if inst.idle is not None:
                    inst.idle.cancel()
                    inst.idle = None
                if not inst.inflight and not inst.loading:
                    pool.instances.remove(inst)

    def work_ids(self, kind: str, params: dict[str, Any]) -> list[str]:
        """The live tasks serving (kind, params), first task first."""
        return [i.work_id for i in self._pool(kind, params).instances if i.work_id is not None]

    def warm(self, kind: str, params: dict[str, Any]) -> asyncio.Future:
        """Set up the first task of (kind, params) in the background, so the first request finds a
        loaded model; it counts as loading from now on, before the unit process is even ready."""
        pool = self._pool(kind, params)
        inst = pool.pick()
        assert inst is not None
        inst.loading = True

        async def setup() -> None:
            try:
                await self._setup(pool, inst)
            except GatewayError as e:
                log.error("warming %s %s failed: %s", kind, pool.model, e.message)
            finally:
                inst.loading = False
                self._drop_if_broken(pool, inst)

        return self._spawn(setup())

    def _spawn(self, coro: Any) -> asyncio.Future:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _setup(self, pool: _Pool, inst: _Instance) -> str:
        async with inst.lock:
            if inst.error is not None:
                raise inst.error
            if inst.work_id is not None:
                return inst.work_id
            inst.loading = True
            try:
                async with pool.setup_lock:
                    reply = await self.conn.request(pool.kind, "setup", f"{pool.kind}.setup", pool.params)
                    if reply.get("error", {}).get("code") == -21 and await self._evict_idle(pool):
                        reply = await self.conn.request(pool.kind, "setup", f"{pool.kind}.setup", pool.params)
            finally:
                inst.loading = False
            if reply.get("error", {}).get("code", 0) != 0:
                err = unit_error(reply)
                if err.status == 500:
                    err.status = 503  # a model that failed to load: the service is unavailable
                inst.error = err
                raise err
            inst.work_id = reply["work_id"]
            return inst.work_id

    async def _evict_idle(self, pool: _Pool) -> bool:
        """The unit's task slots are all taken (-21): exit the least recently used idle task that
        other setup params of the same kind hold, so warm tasks act as a cache, not a leak."""
        idle = [(i.last_used, other, i) for other in self._pools.values() if other.kind == pool.kind
                and other is not pool for i in other.instances if not i.inflight and i.work_id and not i.loading]
        if not idle:
            return False
        _, owner, victim = min(idle, key=lambda t: t[0])
        owner.instances.remove(victim)
        if victim.idle is not None:
            victim.idle.cancel()
        log.info("%s: all task slots in use; releasing idle %s to set up new params", pool.kind, victim.work_id)
        await self.conn.request(victim.work_id, "exit", timeout=10)
        return True

    def _acquire(self, inst: _Instance) -> _Instance:
        inst.last_used = time.monotonic()
        inst.inflight += 1
        if inst.idle is not None:
            inst.idle.cancel()
            inst.idle = None
        return inst

    def _release(self, pool: _Pool, inst: _Instance) -> None:
        inst.inflight -= 1
        if inst.inflight == 0 and not self._drop_if_broken(pool, inst) and inst.work_id is not None \
                and pool.instances and inst is not pool.instances[0]:
            inst.idle = asyncio.get_running_loop().call_later(self.idle_release_s, self._retire, pool, inst)

    def _drop_if_broken(self, pool: _Pool, inst: _Instance) -> bool:
        if inst.error is not None and inst.inflight == 0 and not inst.loading and inst in pool.instances:
            pool.instances.remove(inst)  # the next request sets up a fresh one
            return True
        return False

    def _retire(self, pool: _Pool, inst: _Instance) -> None:
        """A surplus task idle for `idle_release_s`: exit it, so the unit's task slot is free again
        for StackFlow clients (units host at most `max_tasks` tasks)."""
        inst.idle = None
        if inst.inflight or inst not in pool.instances or inst is pool.instances[0] or inst.work_id is None:
            return
        pool.instances.remove(inst)
        self._spawn(self.conn.request(inst.work_id, "exit", timeout=10))

    async def stream(self, kind: str, params: dict[str, Any], data: Any, object: str,
                     payload: bytes | None = None, timeout: float = 300.0) -> AsyncIterator[dict[str, Any]]:
        """Outputs of one inference on the least-busy task for (kind, params). Errors raise GatewayError."""
        pool = self._pool(kind, params)
        if pool.inflight >= self.max_inflight:
            raise GatewayError(429, f"{kind}: {pool.inflight} requests are already waiting for this model; "
                                    "retry later or send fewer concurrent requests",
                               type="rate_limit_error", code="queue_full", retry_after=1)
        inst: _Instance | None = self._acquire(pool.pick())  # type: ignore[arg-type]
        finished = False
        work_id = None
        try:
            for attempt in (0, 1):
                while True:
                    try:
                        work_id = await self._setup(pool, inst)
                        break
                    except GatewayError as e:
                        self._release(pool, inst)
                        inst = pool.pick(grow=False)
                        if inst is None:
                            raise
                        # An extra task was refused (the unit's max_tasks is in use, or the load
                        # failed): queue on a task that exists rather than failing the request.
                        pool.grow_after = time.monotonic() + self.grow_retry_s
                        log.warning("%s %s: no extra task (%s); queueing on %s", kind, pool.model, e.message,
                                    inst.work_id or "another task")
                        self._acquire(inst)
                rid = await self.conn.infer(work_id, data, object, payload)
                first = True
                async for msg in self.conn.outputs(work_id, rid, timeout=timeout):
                    if msg.get("error", {}).get("code", 0) != 0:
                        code = msg["error"]["code"]
                        if first and attempt == 0 and (code in TASK_GONE or "is gone" in json.dumps(msg)):
                            if inst.work_id == work_id:
                                inst.work_id = None  # the unit restarted: set the task up again, once
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
            if inst is not None:
                self._release(pool, inst)
                if not finished and work_id is not None and inst.inflight == 0 and inst.work_id == work_id:
                    # The client went away mid-answer and nobody else waits on this task: stop the work
                    # (`pause` aborts generation at once) instead of computing an answer nobody reads.
                    self._spawn(self.conn.request(work_id, "pause", timeout=10))

    async def run(self, kind: str, params: dict[str, Any], data: Any, object: str,
                  payload: bytes | None = None, timeout: float = 300.0) -> list[dict[str, Any]]:
        return [m async for m in self.stream(kind, params, data, object, payload, timeout)]

    async def close(self) -> None:
        for pool in self._pools.values():
            for inst in pool.instances:
                if inst.idle is not None:
                    inst.idle.cancel()
                if inst.work_id is not None:
                    try:
                        await self.conn.request(inst.work_id, "exit", timeout=5)
                    except Exception:  # the daemon is shutting down anyway
                        pass
        self.conn.close()


class TextBatcher(Batcher):
    """Dynamic batching of text lists sent to a unit: concurrent requests become one inference
    with all their texts (`{"texts": [...]}`), and each request gets its own rows back.

    The unit answers in its binary `<kind>.f32` format (float32 rows; base64 in the JSON reply
    to the router) instead of JSON floats: writing, reading and writing again 384 floats per text
    as JSON took more CPU than the encoder itself on short texts."""

    def __init__(self, tasks: UnitTasks, kind: str, params: dict[str, Any], *, label: str, metrics: Any,
                 policy: BatchPolicy | None = None):
        def on_batch(rows: int, seconds: float) -> None:
            metrics.batch_size.labels(label).observe(rows)
            metrics.inference_seconds.labels(label).observe(seconds)

        super().__init__(lambda inputs: inputs, policy or BatchPolicy(max_batch_size=64, max_queue_delay_ms=1.0,
                                                                      instances=1, max_queue=256, timeout_s=60.0),
                         batchable=True, on_batch=on_batch)
        self.tasks, self.kind = tasks, kind
        self.params = {**params, "response_format": f"{kind}.f32"}

    def rows(self, inputs: list) -> int:
        return len(inputs[0])

    def compatible(self, a: list, b: list) -> bool:
        return True

    def concat(self, requests: list[list]) -> list:
        return [[text for r in requests for text in r[0]]]

    def take(self, outputs: list, start: int, rows: int) -> list:
        return [o[start:start + rows] for o in outputs]

    async def call(self, inputs: list) -> list:
        import base64

        # only the wire format: the unit itself runs in its own process
        from emberflow.units.embed import unpack_f32

        msgs = await self.tasks.run(self.kind, self.params, {"texts": inputs[0]}, f"{self.kind}.json")
        try:
            vectors, tokens = unpack_f32(base64.b64decode(msgs[-1]["data"], validate=True))
        except (IndexError, KeyError, TypeError, ValueError):  # binascii.Error is a ValueError
            raise GatewayError(500, f"the {self.kind} unit returned no embeddings") from None
        if len(vectors) != len(inputs[0]):
            raise GatewayError(500, f"the {self.kind} unit returned {len(vectors)} embeddings for "
                                    f"{len(inputs[0])} texts")
        return [vectors.tolist(), tokens.tolist()]
