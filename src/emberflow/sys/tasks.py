"""The task table: the one place that knows which tasks exist, who owns them and who waits on them.

The router writes it; every other layer reads it or subscribes to its lifecycle events
(`TaskStarted`, `TaskLinked`, `TaskEnded`, `TaskLost`, `UnitLost`), and in-process gateways
hold *leases* on its tasks instead of keeping tables of their own: the HTTP gateway's warm
tasks are shared leases, a WebSocket session's task is an exclusive one.

Ownership (see "Task ownership" in the README):
- a task belongs to the *principal* that set it up; only that principal may drive it
  (inference, pause, work, link, unlink, exit, custom actions); anyone may read it (taskinfo);
- the answer to a request goes to the connection that sent that request;
- output no request asked for (frames from linked tasks, wake events) goes to the task's
  *owner*: the connection of its principal that set it up or drove it last (StackFlow §2.5,
  so a client that reconnects takes its tasks' output back by driving them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from emberflow.protocol.envelope import Request
from emberflow.protocol.errors import Code, StackFlowError

log = logging.getLogger("emberflow.tasks")

FIRST_WORK_ID = 1000  # StackFlow's config_work_id
SYSTEM = "sys"  # the principal of sys's own requests: may drive every task
SHARED = "shared"  # the principal of device tasks (singletons: audio): every client may drive them
# The one action on a task that only reads it; every other one (inference, pause, work, link,
# unlink, exit, a unit's custom actions) drives it.
READING = frozenset({"taskinfo"})


class LossReason(str, Enum):
    CRASHED = "crashed"  # the unit process died
    HUNG = "hung"  # the unit process stopped answering; the watchdog killed it
    RESET = "reset"  # sys.reset


@dataclass
class TaskRecord:
    work_id: str
    kind: str
    principal: str  # who may drive it
    owner: int  # connection that gets output no request asked for
    data_addr: str
    model: str | None
    params: dict[str, Any]  # the setup data as set up (with configured defaults)
    inputs: list[str] = field(default_factory=list)  # upstream work ids, kept current by links
    last_request_id: str = ""
    created: float = field(default_factory=time.time)
    # Requests sent to the unit and not fully answered yet: (conn, request_id) -> how many (clients
    # may reuse a request id: StackFlow's vlm example sends an image and a question under one).
    waiting: dict[tuple[int, str], int] = field(default_factory=dict)
    leases: int = 0  # in-process holders using it right now (shared leases)
    exclusive: bool = False  # held by one in-process holder alone (a WebSocket session)
    last_used: float = 0.0  # monotonic, when a lease was last taken
    system_frames: bool = False  # its unit declares its outputs system frames (a wake word)
    output_policy: str = "lossless"  # the queue policy of links from it that name none (camera: latest)
    host: str = ""  # the unit host it lives on: its kind, or `kind#N` for a replica (sys.placement)
    remote_addr: str | None = None  # its data socket on tcp, for tasks on other machines (if data_addr is ipc)

    def __post_init__(self) -> None:
        self.host = self.host or self.kind


@dataclass
class Pending:
    """A control request sent to a unit process and not answered yet."""

    conn: int
    principal: str
    request: Request
    work_id: str | None  # the work id allocated to a setup
    host: str = ""  # the unit host it was sent to ("" until it is sent)


# --- lifecycle events -----------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskStarted:
    record: TaskRecord


@dataclass(frozen=True)
class TaskLinked:
    work_id: str
    source: str
    linked: bool  # False: unlinked


@dataclass(frozen=True)
class TaskEnded:
    """Released on purpose (exit)."""

    work_id: str
    kind: str


@dataclass(frozen=True)
class TaskLost:
    work_id: str
    kind: str
    reason: LossReason
    detail: str


@dataclass(frozen=True)
class UnitLost:
    """The tasks of a unit host of `kind` are gone (after the TaskLost of each): its process died
    or sys reset. With one host per kind (no replicas), that is every task of the kind."""

    kind: str
    reason: LossReason


Event = TaskStarted | TaskLinked | TaskEnded | TaskLost | UnitLost
Subscriber = Callable[[Event], None]


class Lease:
    """Use of a task by an in-process holder; `release()` (or leaving the `with`) ends it."""

    def __init__(self, table: TaskTable, record: TaskRecord, exclusive: bool):
        self.table, self.record, self.exclusive = table, record, exclusive
        self.released = False

    @property
    def work_id(self) -> str:
        return self.record.work_id

    @property
    def alive(self) -> bool:
        return self.table.get(self.record.work_id) is self.record

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        if self.exclusive:
            self.record.exclusive = False
        else:
            self.record.leases -= 1
        self.table.lease_released(self)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class TaskTable:
    def __init__(self, subscribers: list[Subscriber] | None = None):
        self.records: dict[str, TaskRecord] = {}
        self.pending: dict[str, list[Pending]] = {}  # unit kind -> control requests not answered yet
        self.counter = FIRST_WORK_ID
        self._subscribers: list[Subscriber] = list(subscribers or [])
        self._lease_listeners: list[Callable[[Lease], None]] = []

    # --- subscribers ------------------------------------------------------------------------------
    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def _emit(self, event: Event) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # one subscriber's bug must not stop the others or the router
                log.exception("task event subscriber failed on %s", event)

    # --- work ids ---------------------------------------------------------------------------------
    def next_work_id(self, kind: str, *, consume: bool = True) -> str:
        work_id = f"{kind}.{self.counter}"
        if consume:
            self.counter += 1  # consumed even if the setup fails, as StackFlow does
        return work_id

    # --- records ----------------------------------------------------------------------------------
    def get(self, work_id: str) -> TaskRecord | None:
        return self.records.get(work_id)

    def __contains__(self, work_id: object) -> bool:
        return work_id in self.records

    def __iter__(self) -> Iterator[TaskRecord]:
        return iter(list(self.records.values()))

    def of_kind(self, kind: str) -> list[TaskRecord]:
        return [r for r in self.records.values() if r.kind == kind]

    def add(self, record: TaskRecord) -> None:
        self.records[record.work_id] = record
        self._emit(TaskStarted(record))

    def end(self, work_id: str) -> TaskRecord | None:
        record = self.records.pop(work_id, None)
        if record is not None:
            self._emit(TaskEnded(work_id, record.kind))
        return record

    def relink(self, work_id: str, source: str, linked: bool) -> None:
        record = self.records.get(work_id)
        if record is None:
            return
        if linked and source not in record.inputs:
            record.inputs.append(source)
        elif not linked and source in record.inputs:
            record.inputs.remove(source)
        self._emit(TaskLinked(work_id, source, linked))

    def lose_kind(self, kind: str, reason: LossReason, detail: str, host: str | None = None) -> list[TaskRecord]:
        """Every task of `kind` (on unit host `host`, if given) is gone; returns them (the router
        answers whoever waited)."""
        lost = [self.records.pop(r.work_id) for r in self.of_kind(kind) if host is None or r.host == host]
        for record in lost:
            self._emit(TaskLost(record.work_id, kind, reason, detail))
        self._emit(UnitLost(kind, reason))
        return lost

    def clear(self, kinds: list[str]) -> None:
        """sys.reset: every task and pending request is gone, work ids start again."""
        for kind in kinds:
            self.lose_kind(kind, LossReason.RESET, "sys.reset")
        self.records.clear()
        self.pending.clear()
        self.counter = FIRST_WORK_ID

    # --- pending control requests -----------------------------------------------------------------
    def add_pending(self, kind: str, pending: Pending) -> None:
        self.pending.setdefault(kind, []).append(pending)

    def take_pending(self, kind: str, conn: int, request_id: str) -> Pending | None:
        for i, p in enumerate(self.pending.get(kind, [])):
            if p.conn == conn and p.request.request_id == request_id:
                return self.pending[kind].pop(i)
        return None

    def setups_in_progress(self, conn: int) -> list[Pending]:
        return [p for ps in self.pending.values() for p in ps if p.conn == conn and p.request.action == "setup"]

    # --- ownership --------------------------------------------------------------------------------
    @staticmethod
    def request_opened(record: TaskRecord, key: tuple[int, str]) -> None:
        record.waiting[key] = record.waiting.get(key, 0) + 1

    @staticmethod
    def request_closed(record: TaskRecord, key: tuple[int, str]) -> None:
        left = record.waiting.get(key, 0) - 1
        if left > 0:
            record.waiting[key] = left
        else:
            record.waiting.pop(key, None)

    def check_driver(self, record: TaskRecord, principal: str, action: str) -> None:
        """Raise -27 unless `principal` may drive (or read) the task with this action."""
        if action in READING:
            return  # reading is open to every client
        if principal in (record.principal, SYSTEM) or record.principal == SHARED:
            return
        raise StackFlowError(
            Code.FORBIDDEN,
            detail=f"{record.work_id} was set up by another client; only it can "
            f"{action} it (taskinfo works for everyone)",
        )

    # --- cycles -----------------------------------------------------------------------------------
    def would_cycle(self, work_id: str, source: str) -> list[str] | None:
        """The cycle that linking `work_id` to read `source` would make, or None."""
        path: list[str] = [source]

        def reaches(node: str, seen: set[str]) -> bool:
            if node == work_id:
                return True
            record = self.records.get(node)
            for upstream in record.inputs if record is not None else ():
                if upstream not in seen:
                    seen.add(upstream)
                    path.append(upstream)
                    if reaches(upstream, seen):
                        return True
                    path.pop()
            return False

        return [work_id, *path] if reaches(source, {source}) else None

    # --- leases -----------------------------------------------------------------------------------
    def leasable(self, kind: str, params: dict[str, Any], principal: str) -> list[TaskRecord]:
        """Tasks of `principal` set up with exactly these params that no one holds exclusively,
        oldest first."""
        return [
            r
            for r in self.records.values()
            if r.kind == kind and r.principal == principal and r.params == params and not r.exclusive
        ]

    def lease(self, work_id: str, *, exclusive: bool = False) -> Lease:
        record = self.records.get(work_id)
        if record is None:
            raise StackFlowError(Code.UNIT_NOT_EXIST, detail=f"no task {work_id}")
        if record.exclusive or (exclusive and record.leases):
            raise StackFlowError(Code.TASK_FULL, detail=f"{work_id} is in use by another holder")
        if exclusive:
            record.exclusive = True
        else:
            record.leases += 1
        record.last_used = time.monotonic()
        return Lease(self, record, exclusive)

    def on_lease_released(self, listener: Callable[[Lease], None]) -> None:
        self._lease_listeners.append(listener)

    def lease_released(self, lease: Lease) -> None:
        for listener in self._lease_listeners:
            listener(lease)
