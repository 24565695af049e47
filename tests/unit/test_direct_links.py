"""Lossless links on this machine are read by the task's worker itself (`unit.direct`), not
handed over by the host's main thread: the same policies hold. Nothing is dropped (a busy task
holds its publisher back), system frames still come through the host and interrupt a busy task,
and what waited on the link from before the interrupt is flushed like queued input."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from emberflow.bus.frame import BusFrame, system_topic_of, topic_of
from emberflow.bus.queue import Policy
from emberflow.unit import IO, Unit, UnitParams
from emberflow.unit.host import UnitHost
from emberflow.unit.task import OUTBOX, Task
from support import eventually

SOURCE = "relay.1000"
SOURCE_ADDR = "inproc://relay.1000"


class GateParams(UnitParams):
    response_format: str = "gate.utf-8.stream"


class GateUnit(Unit[GateParams]):
    """Records upstream frames; `gate` holds `on_frame` (a busy task); `infer` runs until aborted."""

    kind = "gate"
    needs_model = False
    Params = GateParams
    inputs = {"text": IO.TEXT}
    outputs = {"text": IO.TEXT_STREAM}

    def setup(self, params: GateParams) -> None:
        self.seen: list[Any] = []
        self.woken = 0
        self.gate = threading.Event()
        self.gate.set()
        self.busy = threading.Event()

    def on_frame(self, frame: BusFrame) -> None:
        self.gate.wait()
        self.seen.append(frame.data)

    def infer(self, text: str) -> Iterator[str]:
        self.busy.set()
        while True:  # stopped only by an interrupt, at the next piece
            yield text
            time.sleep(0.005)

    def on_wake(self, frame: Any = None) -> None:
        self.woken += 1


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    outbox = context.socket(zmq.PULL)  # where the task's outputs for clients go (the host's)
    outbox.bind(OUTBOX)
    yield context
    outbox.close(0)
    context.term()


@pytest.fixture
def publisher(ctx: zmq.Context[Any]) -> Iterator[zmq.Socket[bytes]]:
    pub = ctx.socket(zmq.XPUB)  # as a task's data socket: lossless, blocks instead of dropping
    pub.setsockopt(zmq.XPUB_NODROP, 1)
    pub.setsockopt(zmq.SNDHWM, 8)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(SOURCE_ADDR)
    yield pub
    pub.close(0)


def make_task(ctx: zmq.Context[Any]) -> tuple[Task, GateUnit]:
    unit = GateUnit()
    params = GateParams()
    unit.setup(params)
    task = Task(unit, params, "gate.1001", data_addr="inproc://gate.1001", setup_request_id="0", ctx=ctx, model=None)
    task.start()
    return task, unit


def frame(n: int, source: str = SOURCE, system: bool = False) -> BusFrame:
    return BusFrame(source, "relay.utf-8", n, system=system, seq=n).stamp(source)  # stamped as published


def test_a_direct_link_holds_the_publisher_back_and_loses_nothing(ctx, publisher):
    task, unit = make_task(ctx)
    try:
        task.direct.link(SOURCE, SOURCE_ADDR)
        assert publisher.recv() == b"\x01" + topic_of(SOURCE)  # the worker's own SUB subscribed
        unit.gate.clear()  # the task is busy from its first frame on
        sent = 0
        while sent < 10_000:
            try:
                publisher.send_multipart(frame(sent + 1).to_parts(), zmq.NOBLOCK)
            except zmq.Again:
                break  # backpressure reached the publisher: nothing was read past the socket
            sent += 1
        assert sent < 10_000
        assert task.queue.stats()["high_water"] == 0  # the frames never went through the queue
        unit.gate.set()
        for n in range(sent + 1, sent + 51):
            publisher.send_multipart(frame(n).to_parts())  # waits for room, as a task's _publish does
        eventually(lambda: len(unit.seen) == sent + 50, lambda: len(unit.seen))
        assert unit.seen == list(range(1, sent + 51))
    finally:
        task.stop()


def test_a_wake_interrupts_a_busy_task_and_flushes_what_waited_on_its_direct_links(ctx, publisher):
    task, unit = make_task(ctx)
    try:
        task.direct.link(SOURCE, SOURCE_ADDR)
        task.local_links.add(SOURCE)
        publisher.recv()
        task.submit_inference("gate.utf-8", "talking", None, "r1", 8000, [])
        eventually(unit.busy.is_set)
        for n in (1, 2):  # published before the wake: they wait on the link while the task works
            publisher.send_multipart(frame(n).to_parts())
        wake = frame(3, system=True)  # from the same publisher, as a TTS's stop to the audio unit
        assert wake.to_parts()[0] == system_topic_of(SOURCE)  # not a topic the worker subscribes to
        task.submit_frame(wake)  # what the host's main thread does with a system frame it reads
        publisher.send_multipart(frame(4).to_parts())  # published after the wake: still wanted
        eventually(lambda: unit.seen == [4], lambda: unit.seen)
        assert unit.woken == 1 and task.stats["aborted"] == 1
        assert task.stats["frames_missed"] == 0  # number 3 went to the host, 1 and 2 were flushed: no loss
        assert task.queue.stats()["flushed"] == 2
    finally:
        task.stop()


def test_the_host_reads_latest_links_system_frames_and_other_machines(tmp_path: Path):
    host = UnitHost(GateUnit, "inproc://no-sys-here", str(tmp_path))
    task, _ = make_task(host.ctx)
    host.tasks[task.work_id] = task
    host.subs[task.work_id] = host.ctx.socket(zmq.SUB)
    try:
        host._link_source(task, "cam.1003", "inproc://cam.1003", Policy.LATEST)  # conflated while busy
        host._link_source(task, "echo.1004", "tcp://127.0.0.1:1", Policy.LOSSLESS)  # another clock
        # a wake word's task: all its frames in order on one reader, so its chime never overtakes the wake
        host._link_source(task, "kws.1005", "inproc://kws.1005", Policy.LOSSLESS, system=True)
        host._link_source(task, SOURCE, SOURCE_ADDR, Policy.LOSSLESS)
        assert task.direct.sources == {SOURCE: SOURCE_ADDR}
        assert task.local_links == {"cam.1003", "kws.1005", SOURCE}
    finally:
        host._shutdown()
