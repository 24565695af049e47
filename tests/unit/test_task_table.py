"""The task table: one owner of task lifecycle, ownership rules, link cycles, leases and events."""

from __future__ import annotations

import pytest

from emberflow.protocol.envelope import Request
from emberflow.protocol.errors import Code, StackFlowError
from emberflow.sys.tasks import (
    SHARED,
    SYSTEM,
    LossReason,
    Pending,
    TaskEnded,
    TaskLinked,
    TaskLost,
    TaskRecord,
    TaskStarted,
    TaskTable,
    UnitLost,
)


def record(work_id, principal="wire:8000", params=None, inputs=None):
    return TaskRecord(
        work_id,
        work_id.split(".")[0],
        principal,
        owner=8000,
        data_addr=f"ipc:///x/{work_id}.pub",
        model=None,
        params=params or {},
        inputs=list(inputs or []),
    )


@pytest.fixture
def events():
    return []


@pytest.fixture
def table(events):
    return TaskTable(subscribers=[events.append])


def test_lifecycle_events_in_order(table, events):
    table.add(record("llm.1000"))
    table.add(record("kws.1001"))
    table.relink("llm.1000", "kws.1001", True)
    table.end("kws.1001")
    lost = table.lose_kind("llm", LossReason.CRASHED, "killed by signal 9")
    assert [r.work_id for r in lost] == ["llm.1000"] and "llm.1000" not in table
    assert [type(e) for e in events] == [TaskStarted, TaskStarted, TaskLinked, TaskEnded, TaskLost, UnitLost]
    assert events[4] == TaskLost("llm.1000", "llm", LossReason.CRASHED, "killed by signal 9")
    assert events[5] == UnitLost("llm", LossReason.CRASHED)


def test_a_failing_subscriber_does_not_stop_the_others(events):
    def broken(event):
        raise RuntimeError("bug")

    table = TaskTable(subscribers=[broken, events.append])
    table.add(record("llm.1000"))
    assert len(events) == 1


def test_work_ids_count_up_and_reset(table):
    assert table.next_work_id("llm") == "llm.1000" and table.next_work_id("asr") == "asr.1001"
    table.add(record("llm.1000"))
    table.add_pending("llm", Pending(8000, "wire:8000", Request("r", "llm", "setup"), "llm.1002"))
    table.clear(["llm", "asr"])
    assert table.next_work_id("llm") == "llm.1000" and not table.pending and not table.records


def test_only_the_principal_drives_a_task_anyone_reads_it(table):
    rec = record("llm.1000", principal="local:http")
    table.check_driver(rec, "wire:8001", "taskinfo")  # reading is open
    table.check_driver(rec, "local:http", "inference")
    table.check_driver(rec, SYSTEM, "exit")
    for action in ("inference", "exit", "pause", "link", "unlink", "work", "trigger"):
        with pytest.raises(StackFlowError) as e:
            table.check_driver(rec, "wire:8001", action)
        assert e.value.code == Code.FORBIDDEN
    table.check_driver(record("audio", principal=SHARED), "wire:8001", "inference")  # a device: shared


def test_cycles_are_found_before_linking(table):
    table.add(record("a.1", inputs=[]))
    table.add(record("b.2", inputs=["a.1"]))
    table.add(record("c.3", inputs=["b.2"]))
    assert table.would_cycle("a.1", "a.1") == ["a.1", "a.1"]
    assert table.would_cycle("a.1", "c.3") == ["a.1", "c.3", "b.2", "a.1"]
    assert table.would_cycle("c.3", "a.1") is None  # a second path, not a cycle


def test_leases_share_or_exclude(table):
    params = {"model": "m"}
    table.add(record("llm.1000", principal="local:http", params=params))
    table.add(record("llm.1001", principal="local:http", params=params))
    table.add(record("llm.1002", principal="local:http", params={"model": "other"}))
    table.add(record("llm.1003", principal="wire:8000", params=params))
    assert [r.work_id for r in table.leasable("llm", params, "local:http")] == ["llm.1000", "llm.1001"]
    released = []
    table.on_lease_released(released.append)
    with table.lease("llm.1000") as a, table.lease("llm.1000") as b:
        assert table.get("llm.1000").leases == 2 and a.alive and b.alive
        with pytest.raises(StackFlowError):
            table.lease("llm.1000", exclusive=True)  # in use
    assert table.get("llm.1000").leases == 0 and len(released) == 2
    session = table.lease("llm.1001", exclusive=True)
    assert [r.work_id for r in table.leasable("llm", params, "local:http")] == ["llm.1000"]  # hidden from the pool
    with pytest.raises(StackFlowError):
        table.lease("llm.1001")
    session.release()
    session.release()  # idempotent
    assert not table.get("llm.1001").exclusive


def test_a_lease_on_a_lost_task_is_no_longer_alive(table):
    table.add(record("llm.1000", principal="local:http"))
    lease = table.lease("llm.1000")
    table.lose_kind("llm", LossReason.HUNG, "no heartbeat")
    assert not lease.alive
    lease.release()
    with pytest.raises(StackFlowError) as e:
        table.lease("llm.1000")
    assert e.value.code == Code.UNIT_NOT_EXIST


def test_a_reused_request_id_stays_open_until_each_request_is_done(table):
    """StackFlow's vlm example sends an image and then a question under one request id: the first
    one's Done must not close the second (its answer would have nowhere to go)."""
    rec = record("vlm.1000")
    key = (8000, "vlm_inference")
    table.request_opened(rec, key)
    table.request_opened(rec, key)
    table.request_closed(rec, key)
    assert rec.waiting == {key: 1}
    table.request_closed(rec, key)
    table.request_closed(rec, key)  # an extra Done (an error on a chunk) never goes below zero
    assert rec.waiting == {}
