"""Bus frames are numbered by the task that publishes them, and a reading task counts the numbers
it never saw: a frame lost between machines (a broken tcp link) is counted, never silent."""

from __future__ import annotations

import zmq

from emberflow.bus.frame import BusFrame
from emberflow.unit.task import Task
from units_for_tests import EchoUnit


def test_the_number_travels_with_the_frame():
    frame = BusFrame("llm.1000", "llm.utf-8.stream", {"delta": "hi", "index": 0, "finish": False}, seq=42)
    assert BusFrame.from_parts(frame.to_parts()).seq == 42
    unnumbered = BusFrame("llm.1000", "llm.utf-8", "hi").to_parts()  # e.g. from an older publisher
    assert BusFrame.from_parts(unnumbered).seq == 0


def test_a_reader_counts_the_frames_that_never_arrived():
    unit = EchoUnit()
    task = Task(
        unit,
        EchoUnit.Params(),
        "echo.1001",
        data_addr="inproc://unused",
        setup_request_id="0",
        ctx=zmq.Context.instance(),
        model=None,
    )
    for seq in (7, 8, 11, 12):  # linked mid-stream at 7; 9 and 10 were lost on the way
        task.submit_frame(BusFrame("relay.1000", "relay.utf-8", f"frame {seq}", seq=seq))
    task.submit_frame(BusFrame("echo.1002", "echo.utf-8", "another source starts its own count", seq=3))
    assert task.stats["frames_missed"] == 2
    assert task.queue.stats()["depth"] == 5  # every frame that did arrive is queued for the unit
