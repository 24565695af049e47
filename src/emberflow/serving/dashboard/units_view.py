"""What the units and tasks tables show: pure functions of the router's state, the tasks'
`taskinfo` answers and the unit processes' resource use (no I/O here, so tests need no server)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emberflow.sys.tasks import LossReason, TaskRecord

# What a person reads; the supervisor's own words mapped onto the five the dashboard uses.
STATES = ("starting", "ready", "busy", "crashed", "restarting")


@dataclass
class UnitHistory:
    """What the dashboard remembers of a unit kind across its processes (the supervisor keeps
    only the last minute of crashes)."""

    restarts: int = 0
    lost: LossReason | None = None  # why its tasks went last; cleared when a new process is ready
    lost_pid: int | None = None
    detail: str = ""


@dataclass
class ProcessUse:
    rss: int = 0  # bytes
    cpu: float = 0.0  # percent of one core since the last sample


@dataclass
class Inputs:
    """Everything one snapshot is made of."""

    records: list[TaskRecord]
    units: list[dict[str, Any]]  # Supervisor.status()
    infos: dict[str, dict[str, Any]]  # work_id -> taskinfo data
    use: dict[int, ProcessUse]  # pid -> use
    history: dict[str, UnitHistory]
    pending: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)  # kind -> (request id, work id)


def unit_state(status: dict[str, Any], history: UnitHistory | None) -> str:
    """crashed from the moment its process dies until a new one is ready; then ready again."""
    state = status.get("state", "starting")
    lost = history.lost if history is not None else None
    if lost in (LossReason.CRASHED, LossReason.HUNG) and state != "ready":
        return "crashed"
    if state in ("hung", "unresponsive"):
        return "crashed" if state == "hung" else "busy"
    return state if state in STATES else "starting"


def task_state(record: TaskRecord, info: dict[str, Any] | None, unit: str) -> str:
    if unit != "ready":
        return unit
    depth = (info or {}).get("queue", {}).get("depth", 0)
    return "busy" if record.waiting or depth else "ready"


def units_rows(inp: Inputs) -> list[dict[str, Any]]:
    rows = []
    for status in sorted(inp.units, key=lambda s: s["kind"]):
        kind, pid = status["kind"], status.get("pid")
        history = inp.history.get(kind)
        use = inp.use.get(pid) if pid is not None else None
        rows.append(
            {
                "kind": kind,
                "state": unit_state(status, history),
                "pid": pid,
                "rss": use.rss if use else None,
                "cpu": round(use.cpu, 1) if use else None,
                "restarts": history.restarts if history else 0,
                "tasks": sum(1 for r in inp.records if r.kind == kind),
                "ready_after_s": status.get("ready_after_s"),
                "detail": history.detail if history and history.lost else "",
            }
        )
    return rows


def tasks_rows(inp: Inputs) -> list[dict[str, Any]]:
    by_kind = {u["kind"]: u for u in units_rows(inp)}
    rows = []
    for rec in sorted(inp.records, key=lambda r: r.created):
        info = inp.infos.get(rec.work_id) or {}
        unit = by_kind.get(rec.kind, {})
        queue, stats = info.get("queue", {}), info.get("stats", {})
        rows.append(
            {
                "work_id": rec.work_id,
                "kind": rec.kind,
                "state": task_state(rec, info, unit.get("state", "ready")),
                "model": info.get("resolved_model") or rec.model or info.get("model"),
                "owner": rec.owner,
                "principal": rec.principal,
                "waiting": len(rec.waiting),
                "leases": rec.leases + (1 if rec.exclusive else 0),
                "depth": queue.get("depth", 0),
                "high_water": queue.get("high_water", 0),
                "drops": sum(queue.get("dropped", {}).values()) + queue.get("flushed", 0),
                "inferences": stats.get("inferences", 0),
                "outputs": stats.get("outputs", 0),
                "errors": stats.get("errors", 0),
                "rss": unit.get("rss"),
                "cpu": unit.get("cpu"),
                "restarts": unit.get("restarts", 0),
            }
        )
    for kind, setups in sorted(inp.pending.items()):
        for request_id, work_id in setups:
            rows.append(
                {
                    "work_id": work_id or f"{kind} (setup {request_id})",
                    "kind": kind,
                    "state": "starting",
                    "model": None,
                    "owner": None,
                    "principal": None,
                    "waiting": 0,
                    "leases": 0,
                    "depth": 0,
                    "high_water": 0,
                    "drops": 0,
                    "inferences": 0,
                    "outputs": 0,
                    "errors": 0,
                    "rss": None,
                    "cpu": None,
                    "restarts": by_kind.get(kind, {}).get("restarts", 0),
                }
            )
    return rows
