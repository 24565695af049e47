"""How the HTTP gateway reaches units: as a client of the router, holding leases on its tasks.

One `LocalConnection` carries every HTTP request. The tasks themselves live in the router's task
table; what this module adds is policy: which warm task a request uses. Tasks are set up on
first use per (unit kind, setup params) and reused, so `/v1/chat/completions` for one model
always lands on a warm `llm.N` task. Requests to one task run one after another inside the unit,
so a model may have several tasks (`instances` in the config, capped by the unit's `max_tasks`):
another one is set up only when a request arrives while every task is busy, each request takes
a lease on the least-busy task, and a surplus task idle for `idle_release_s` is exited again.
`max_inflight` bounds how many requests may wait per model: 429 beyond it, not a growing queue.
When a unit process dies its tasks leave the table, and so leave the pool, by themselves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from emberflow.gateways.base import RequestHandler
from emberflow.gateways.local import LocalConnection
from emberflow.protocol.errors import Code, Reason
from emberflow.serving.batching import Batcher, BatchPolicy
from emberflow.serving.errors import GatewayError, unit_error
from emberflow.sys.tasks import Event, Lease, TaskRecord, TaskTable, UnitLost

log = logging.getLogger("emberflow.serving.tasks")

__all__ = ["GatewayError", "TextBatcher", "UnitTasks", "unit_error"]


@dataclass
class _Setup:
    """A task of a pool being set up; requests that chose it wait for it."""

    done: asyncio.Future[str]  # the work id, or a GatewayError
    claims: int = 1


@dataclass
class _Pool:
    """Policy state for one (unit kind, setup params); its tasks are the table's records."""

    kind: str
    params: dict[str, Any]
    size: int
    setups: list[_Setup] = field(default_factory=list)
    setup_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one model load at a time
    grow_after: float = 0.0  # monotonic; an extra task was refused, don't ask again before it

    @property
    def model(self) -> str:
        return str(self.params.get("model") or self.kind)  # the metrics label


class UnitTasks:
    """Warm tasks per (unit kind, setup params), shared by every HTTP request."""

    grow_retry_s = 10.0  # after a unit refused an extra task (-21, e.g. StackFlow clients hold it)

    def __init__(
        self,
        router: RequestHandler,
        table: TaskTable,
        max_inflight: int = 32,
        instances: Callable[[str], int] | None = None,
    ):
        self.table = table
        self.conn = LocalConnection(router, "http")
        self.sessions = LocalConnection(router, "http-session")  # tasks of WebSocket sessions, never pooled
        self.max_inflight = max_inflight  # per model (all its tasks together); 429 beyond it
        self.instances = instances or (lambda kind: 1)  # tasks per model, by unit kind
        self._pools: dict[str, _Pool] = {}
        self._retire_timers: dict[str, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Future[Any]] = set()
        # A surplus task (beyond the first) idle this long is exited, freeing the unit's slot.
        self.idle_release_s = float(os.environ.get("EMBERFLOW_IDLE_RELEASE_S", "30"))
        table.on_lease_released(self._lease_released)
        table.subscribe(self._on_event)

    # --- what the table says about our pools --------------------------------------------------------
    def _pool(self, kind: str, params: dict[str, Any]) -> _Pool:
        key = f"{kind}|{json.dumps(params, sort_keys=True)}"
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(kind, params, max(1, self.instances(kind)))
        return pool

    def _records(self, pool: _Pool) -> list[TaskRecord]:
        return self.table.leasable(pool.kind, pool.params, self.conn.principal)

    def _inflight(self, pool: _Pool) -> int:
        return sum(r.leases for r in self._records(pool)) + sum(s.claims for s in pool.setups)

    def loading(self) -> list[str]:
        """Tasks being set up, as `kind model` (health answers 503 meanwhile)."""
        return [f"{p.kind} {p.model}" for p in self._pools.values() for _ in p.setups]

    def has_task(self, kind: str, params: dict[str, Any]) -> bool:
        return bool(self._records(self._pool(kind, params)))

    def _per_model(self, count: Callable[[_Pool], int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self._pools.values():
            out[p.model] = out.get(p.model, 0) + count(p)
        return out

    def queue_depth(self) -> dict[str, int]:
        """Requests waiting or running, per model."""
        return self._per_model(self._inflight)

    def live_instances(self) -> dict[str, int]:
        """Warm tasks, per model."""
        return self._per_model(lambda p: len(self._records(p)))

    def work_ids(self, kind: str, params: dict[str, Any]) -> list[str]:
        """The live tasks serving (kind, params), first task first."""
        return [r.work_id for r in self._records(self._pool(kind, params))]

    def _on_event(self, event: Event) -> None:
        if isinstance(event, UnitLost):
            for work_id in [w for w in self._retire_timers if w.split(".")[0] == event.kind]:
                self._retire_timers.pop(work_id).cancel()

    # --- leases ------------------------------------------------------------------------------------
    async def _lease(self, pool: _Pool) -> Lease:
        """A lease on the least-busy task of the pool (tasks being set up count, by the requests
        waiting for them); a new task when all are busy and the pool may grow. An extra task the
        unit refuses (its `max_tasks` is taken) means: queue on one that exists."""
        while True:
            records = self._records(pool)
            loads: list[tuple[int, int, TaskRecord | _Setup]] = [(r.leases, 0, r) for r in records]
            loads += [(s.claims, 1, s) for s in pool.setups]  # existing tasks first on ties
            best = min(loads, key=lambda t: t[:2], default=None)
            may_grow = len(loads) < pool.size and time.monotonic() >= pool.grow_after
            if best is not None and isinstance(best[2], TaskRecord) and (best[0] == 0 or not may_grow):
                return self._take(best[2])
            if best is None or (best[0] > 0 and may_grow):
                setup = self._start_setup(pool)
            else:
                setup = best[2]  # type: ignore[assignment]
                setup.claims += 1
            work_id = await self._wait_setup(setup, raise_errors=not records)
            record = self.table.get(work_id) if work_id is not None else None
            if record is not None:
                return self._take(record)
            if work_id is None:
                pool.grow_after = time.monotonic() + self.grow_retry_s
                log.warning("%s %s: no extra task; queueing on an existing one", pool.kind, pool.model)

    def _take(self, record: TaskRecord) -> Lease:
        timer = self._retire_timers.pop(record.work_id, None)
        if timer is not None:
            timer.cancel()
        return self.table.lease(record.work_id)

    async def _wait_setup(self, setup: _Setup, raise_errors: bool = True) -> str | None:
        try:
            return await asyncio.shield(setup.done)
        except GatewayError:
            if raise_errors:
                raise
            return None
        finally:
            setup.claims -= 1

    def _start_setup(self, pool: _Pool, claims: int = 1) -> _Setup:
        setup = _Setup(asyncio.get_running_loop().create_future(), claims)
        pool.setups.append(setup)

        async def run() -> None:
            try:
                setup.done.set_result(await self._setup(pool))
            except GatewayError as e:
                setup.done.set_exception(e)
                setup.done.exception()  # retrieved here: waiters may have given up
            finally:
                pool.setups.remove(setup)

        self._spawn(run())
        return setup

    async def _setup(self, pool: _Pool) -> str:
        async with pool.setup_lock:
            reply = await self.conn.request(pool.kind, "setup", f"{pool.kind}.setup", pool.params)
            if reply.get("error", {}).get("code") == Code.TASK_FULL and await self._evict_idle(pool):
                reply = await self.conn.request(pool.kind, "setup", f"{pool.kind}.setup", pool.params)
        if reply.get("error", {}).get("code", 0) != 0:
            err = unit_error(reply)
            if err.status == 500:
                err.status = 503  # a model that failed to load: the service is unavailable
            raise err
        return str(reply["work_id"])

    async def _evict_idle(self, pool: _Pool) -> bool:
        """The unit's task slots are all taken (-21): exit the least recently used idle task that
        other setup params of the same kind hold, so warm tasks act as a cache, not a leak."""
        idle = [
            r
            for other in self._pools.values()
            if other.kind == pool.kind and other is not pool
            for r in self._records(other)
            if not r.leases
        ]
        if not idle:
            return False
        victim = min(idle, key=lambda r: r.last_used)
        log.info("%s: all task slots in use; releasing idle %s to set up new params", pool.kind, victim.work_id)
        await self._exit(victim.work_id)
        return True

    async def _exit(self, work_id: str) -> None:
        timer = self._retire_timers.pop(work_id, None)
        if timer is not None:
            timer.cancel()
        await self.conn.request(work_id, "exit", timeout=10)

    def _lease_released(self, lease: Lease) -> None:
        """A surplus task no longer used: exit it after `idle_release_s`, so the unit's task slot is
        free again for StackFlow clients (units host at most `max_tasks` tasks)."""
        rec = lease.record
        if lease.exclusive or rec.leases or rec.principal != self.conn.principal or not lease.alive:
            return
        records = self.table.leasable(rec.kind, rec.params, rec.principal)
        if records and records[0] is not rec and rec.work_id not in self._retire_timers:
            self._retire_timers[rec.work_id] = asyncio.get_running_loop().call_later(
                self.idle_release_s, self._retire, rec.work_id
            )

    def _retire(self, work_id: str) -> None:
        self._retire_timers.pop(work_id, None)
        rec = self.table.get(work_id)
        if rec is not None and not rec.leases and not rec.exclusive:
            self._spawn(self.conn.request(work_id, "exit", timeout=10))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:  # retrieved: never "never retrieved"
            log.warning("background request failed: %r", task.exception())

    def warm(self, kind: str, params: dict[str, Any]) -> asyncio.Future[Any]:
        """Set up the first task of (kind, params) in the background, so the first request finds a
        loaded model; it counts as loading from now on, before the unit process is even ready."""
        pool = self._pool(kind, params)
        setup = self._start_setup(pool, claims=0)

        async def logged() -> None:
            try:
                await asyncio.shield(setup.done)
            except GatewayError as e:
                log.error("warming %s %s failed: %s", kind, pool.model, e.message)

        return self._spawn(logged())

    # --- requests ----------------------------------------------------------------------------------
    async def stream(
        self,
        kind: str,
        params: dict[str, Any],
        data: Any,
        object: str,
        payload: bytes | None = None,
        timeout: float = 300.0,
    ) -> AsyncIterator[dict[str, Any]]:
        """Outputs of one inference on the least-busy task for (kind, params). Errors raise GatewayError."""
        pool = self._pool(kind, params)
        inflight = self._inflight(pool)
        if inflight >= self.max_inflight:
            raise GatewayError(
                429,
                f"{kind}: {inflight} requests are already waiting for this model; "
                "retry later or send fewer concurrent requests",
                type="rate_limit_error",
                code="queue_full",
                retry_after=1,
            )
        for attempt in (0, 1):
            with await self._lease(pool) as lease:
                rid = await self.conn.infer(lease.work_id, data, object, payload)
                answered, first = False, True
                try:
                    async for msg in self.conn.outputs(lease.work_id, rid, timeout=timeout):
                        if msg.get("error", {}).get("code", 0) != 0:
                            answered = True
                            if first and attempt == 0 and _task_gone(msg):
                                break  # the unit restarted under us: once more, on a fresh task
                            raise unit_error(msg)
                        first = False
                        yield msg
                    else:
                        answered = True
                        return
                except TimeoutError:
                    raise GatewayError(
                        504, f"{kind} produced no output for {timeout:.0f} s", type="server_error", code="timeout"
                    ) from None
                finally:
                    if not answered:
                        # The client went away (or timed out) mid-answer: the unit stops the work, queued
                        # or running, instead of computing an answer nobody reads.
                        self.conn.cancel(lease.work_id, rid)

    async def run(
        self,
        kind: str,
        params: dict[str, Any],
        data: Any,
        object: str,
        payload: bytes | None = None,
        timeout: float = 300.0,
    ) -> list[dict[str, Any]]:
        return [m async for m in self.stream(kind, params, data, object, payload, timeout)]

    # --- WebSocket sessions: a task of their own ---------------------------------------------------------
    async def open_session(self, kind: str, params: dict[str, Any]) -> Lease:
        reply = await self.sessions.request(kind, "setup", f"{kind}.setup", params)
        if reply.get("error", {}).get("code", 0) != 0:
            raise unit_error(reply)
        return self.table.lease(reply["work_id"], exclusive=True)

    async def close_session(self, lease: Lease) -> None:
        lease.release()
        if lease.alive:
            await self.sessions.request(lease.work_id, "exit", timeout=5)

    async def close(self) -> None:
        for timer in self._retire_timers.values():
            timer.cancel()
        for pool in self._pools.values():
            for rec in self._records(pool):
                try:
                    await self.conn.request(rec.work_id, "exit", timeout=5)
                except Exception:  # the daemon is shutting down anyway
                    pass
        self.conn.close()
        self.sessions.close()


def _task_gone(msg: dict[str, Any]) -> bool:
    """The task this request ran on is gone (its unit process died, or sys.reset)."""
    return LocalConnection.reason(msg) is Reason.TASK_LOST or msg.get("error", {}).get("code") in (
        Code.INFERENCE_PUSH,
        Code.UNIT_NOT_EXIST,
    )


class TextBatcher(Batcher):
    """Dynamic batching of text lists sent to a unit: concurrent requests become one inference
    with all their texts (`{"texts": [...]}`), and each request gets its own rows back.

    The unit answers in its binary `<kind>.f32` format (float32 rows, the control message's raw
    binary part all the way here) instead of JSON floats: writing, reading and writing again 384
    floats per text as JSON took more CPU than the encoder itself on short texts."""

    def __init__(
        self,
        tasks: UnitTasks,
        kind: str,
        params: dict[str, Any],
        *,
        label: str,
        metrics: Any,
        policy: BatchPolicy | None = None,
    ):
        def on_batch(rows: int, seconds: float) -> None:
            metrics.batch_size.labels(label).observe(rows)
            metrics.inference_seconds.labels(label).observe(seconds)

        super().__init__(
            lambda inputs: inputs,
            policy
            or BatchPolicy(max_batch_size=64, max_queue_delay_ms=1.0, instances=1, max_queue=256, timeout_s=60.0),
            batchable=True,
            on_batch=on_batch,
        )
        self.tasks, self.kind = tasks, kind
        self.params = {**params, "response_format": f"{kind}.f32"}

    def rows(self, inputs: Sequence[Any]) -> int:
        return len(inputs[0])

    def compatible(self, a: list[Any], b: list[Any]) -> bool:
        return True

    def concat(self, requests: list[list[Any]]) -> list[Any]:
        return [[text for r in requests for text in r[0]]]

    def take(self, outputs: list[Any], start: int, rows: int) -> list[Any]:
        return [o[start : start + rows] for o in outputs]

    async def call(self, inputs: list[Any]) -> list[Any]:
        from emberflow.bus.f32 import unpack_f32

        msgs = await self.tasks.run(self.kind, self.params, {"texts": inputs[0]}, f"{self.kind}.json")
        try:
            vectors, tokens = unpack_f32(msgs[-1]["data"])
        except (IndexError, KeyError, TypeError, ValueError):
            raise GatewayError(500, f"the {self.kind} unit returned no embeddings") from None
        if len(vectors) != len(inputs[0]):
            raise GatewayError(
                500, f"the {self.kind} unit returned {len(vectors)} embeddings for {len(inputs[0])} texts"
            )
        return [vectors.tolist(), tokens.tolist()]
