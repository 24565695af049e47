"""The dashboard's live state and its fan-out to open pages (server-sent events).

Lifecycle events from the task table are pushed to every page at once; a snapshot of units,
tasks, the flow graph and voice turns follows about twice a second, and a metrics point once a
second. Nothing is polled while no page is open: the sampler starts with the first subscriber
and stops with the last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import psutil

from emberflow.gateways.local import LocalConnection
from emberflow.serving.dashboard import graph_view, units_view
from emberflow.serving.dashboard.camera import CameraPreview
from emberflow.serving.dashboard.metrics_view import Series
from emberflow.serving.dashboard.units_view import Inputs, ProcessUse, UnitHistory
from emberflow.serving.dashboard.voice import Exchanges, PushToTalk
from emberflow.sys.tasks import Event, LossReason, TaskEnded, TaskLinked, TaskLost, TaskStarted, UnitLost

if TYPE_CHECKING:
    from emberflow.serving.gateway import Gateway

log = logging.getLogger("emberflow.dashboard")

SNAPSHOT_EVERY = 0.5  # seconds: "about 2 Hz"
METRICS_EVERY = 1.0
TASKINFO_TIMEOUT = 2.0  # a unit busy loading a model still answers taskinfo from its host loop
QUEUE_LIMIT = 256  # events waiting for one page; a page that far behind is dropped (it reconnects)
KEPT_EVENTS = 50
FRESH_SECONDS = 5.0  # a snapshot this recent is sent to a page that opens, before a new one is made


class Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue(QUEUE_LIMIT)

    def put(self, name: str, data: dict[str, Any]) -> bool:
        try:
            self.queue.put_nowait((name, data))
            return True
        except asyncio.QueueFull:
            return False


class Hub:
    def __init__(self, gateway: Gateway):
        self.gateway = gateway
        self.router = gateway.router
        self.table = gateway.router.tasks
        self.exchanges = Exchanges(self.publish)
        # The dashboard is a client like any other: flows and push-to-talk it starts are its tasks,
        # and what they say comes back here.
        self.conn = LocalConnection(self.router, "dashboard", unsolicited=self.exchanges.on_output)
        self.ptt = PushToTalk(self.conn, self.table, self.exchanges, self.publish)
        self.camera = CameraPreview(self.table)
        self.metrics = Series()
        self.history: dict[str, UnitHistory] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=KEPT_EVENTS)
        self.flows: dict[str, dict[str, str]] = {}  # flow name -> unit name -> work id (ours)
        self._subscribers: set[Subscriber] = set()
        self._sampler: asyncio.Task[None] | None = None
        self._stopper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._procs: dict[int, psutil.Process] = {}
        self._outputs: dict[str, int] = {}
        self.last_snapshot: dict[str, Any] | None = None
        self.table.subscribe(self._on_event)

    # --- fan-out ----------------------------------------------------------------------------------
    def publish(self, name: str, data: dict[str, Any]) -> None:
        for sub in list(self._subscribers):
            if not sub.put(name, data):
                log.warning("a dashboard page fell %d events behind: dropping its stream", QUEUE_LIMIT)
                self._subscribers.discard(sub)
                with contextlib.suppress(asyncio.QueueFull):
                    sub.queue.get_nowait()
                    sub.queue.put_nowait(None)

    async def stream(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Events for one page: a hello with what happened before it opened, then live ones."""
        sub = Subscriber()
        self._subscribers.add(sub)
        loop = asyncio.get_running_loop()
        if self._sampler is None or self._sampler.done():
            self._sampler = loop.create_task(self._sample())
        if self._stopper is None:
            self._stopper = loop.create_task(self._end_streams_on_stop())
        self._wake.set()
        try:
            yield "hello", self.hello()
            while True:
                item = await sub.queue.get()
                if item is None:
                    return
                yield item
        finally:
            self._subscribers.discard(sub)
            if not self._subscribers and self._sampler is not None:
                self._sampler.cancel()
                self._sampler = None

    async def _end_streams_on_stop(self) -> None:
        """The daemon is stopping: end every stream now, or the HTTP server would wait for them."""
        await self.router.stop_event.wait()
        await self.close()

    def hello(self) -> dict[str, Any]:
        from emberflow import __version__

        return {
            "version": __version__,
            "token_required": self.gateway.cfg.auth_required,
            "events": list(self.events),
            "metrics": list(self.metrics.points),
            "exchanges": self.exchanges.public(),
            "ptt": self.ptt.public(),
            "flows": self.flows,
            # the last snapshot, if recent, so a page shows something before the next one is made
            "snapshot": self.last_snapshot if self._fresh() else None,
        }

    def _fresh(self) -> bool:
        return self.last_snapshot is not None and time.time() - self.last_snapshot["at"] < FRESH_SECONDS

    # --- lifecycle events -------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        entry: dict[str, Any] = {"at": time.time(), "type": type(event).__name__}
        if isinstance(event, TaskStarted):
            entry.update(work_id=event.record.work_id, kind=event.record.kind, model=event.record.model)
        elif isinstance(event, TaskLinked):
            entry.update(work_id=event.work_id, source=event.source, linked=event.linked)
        elif isinstance(event, TaskEnded):
            entry.update(work_id=event.work_id, kind=event.kind)
        elif isinstance(event, TaskLost):
            entry.update(work_id=event.work_id, kind=event.kind, reason=event.reason.value, detail=event.detail)
            self.history.setdefault(event.kind, UnitHistory()).detail = event.detail
        elif isinstance(event, UnitLost):
            entry.update(kind=event.kind, reason=event.reason.value)
            h = self.history.setdefault(event.kind, UnitHistory())
            h.lost = event.reason
            up = self.router.supervisor.procs.get(event.kind)
            h.lost_pid = up.pid if up is not None else None
            if event.reason in (LossReason.CRASHED, LossReason.HUNG):
                h.restarts += 1
        self.events.append(entry)
        self.publish("lifecycle", entry)
        self._wake.set()  # a snapshot right away: the tables should not lag the event

    # --- sampling ---------------------------------------------------------------------------------
    async def _sample(self) -> None:
        next_metrics = 0.0
        while True:
            try:
                snapshot = await self.snapshot()
                self.last_snapshot = snapshot
                self.publish("snapshot", snapshot)
                now = time.monotonic()
                if now >= next_metrics:
                    next_metrics = now + METRICS_EVERY
                    point = self.metrics.sample(self.gateway.metrics.render().decode(), time.time())
                    if point is not None:
                        self.publish("metrics", point)
                await asyncio.to_thread(self.camera.close_idle)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad sample must not end the stream
                log.exception("dashboard snapshot failed")
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SNAPSHOT_EVERY)

    async def _taskinfo(self, work_id: str) -> tuple[str, dict[str, Any] | None]:
        try:
            answer = await self.conn.request(work_id, "taskinfo", timeout=TASKINFO_TIMEOUT)
        except TimeoutError:
            return work_id, None
        data = answer.get("data")
        return work_id, data if answer["error"]["code"] == 0 and isinstance(data, dict) else None

    def _use(self, pids: list[int]) -> dict[int, ProcessUse]:
        out = {}
        for pid in pids:
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                    proc.cpu_percent(None)  # the first reading only primes the counter
                out[pid] = ProcessUse(proc.memory_info().rss, proc.cpu_percent(None))
            except psutil.Error:
                self._procs.pop(pid, None)
        for gone in set(self._procs) - set(pids):
            del self._procs[gone]
        return out

    async def snapshot(self) -> dict[str, Any]:
        records = list(self.table)
        ready = {u.kind for u in self.router.supervisor.procs.values() if u.ready.is_set()}
        answers = await asyncio.gather(*(self._taskinfo(r.work_id) for r in records if r.kind in ready))
        infos = {w: i for w, i in answers if i is not None}
        units = self.router.supervisor.status()
        for status in units:  # a new process is ready: the loss is behind it
            h = self.history.get(status["kind"])
            if h is not None and h.lost is not None and status["state"] == "ready" and status["pid"] != h.lost_pid:
                h.lost = None
        pending = {
            kind: [(p.request.request_id, p.work_id) for p in ps if p.request.action == "setup"]
            for kind, ps in self.table.pending.items()
        }
        inputs = Inputs(
            records,
            units,
            infos,
            self._use([u["pid"] for u in units if u.get("pid")]),
            self.history,
            {k: v for k, v in pending.items() if v},
        )
        tasks = units_view.tasks_rows(inputs)
        states = {t["work_id"]: t["state"] for t in tasks}
        flow = graph_view.graph(records, infos, self._outputs, states)
        self._outputs = graph_view.outputs_of(infos)
        turns = (infos.get("audio") or {}).get("unit", {}).get("turns", [])
        self.exchanges.on_turns(turns)
        return {
            "at": time.time(),
            "units": units_view.units_rows(inputs),
            "tasks": tasks,
            "graph": flow,
            "voice": {"turns": turns[-10:], "exchanges": self.exchanges.public()[-10:]},
            "camera": self.camera.tasks(),
            "ptt": self.ptt.public(),
            "flows": self.flows,
        }

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        for sub in list(self._subscribers):
            sub.put("bye", {})
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)
        await asyncio.to_thread(self.camera.close)
        self.conn.close()
