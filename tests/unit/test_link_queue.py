"""Bounded task queues: policies per link, system lane, counted drops, never a blocking host."""

from __future__ import annotations

import threading

from emberflow.bus.queue import LinkQueue


def test_lossless_refuses_at_once_when_full_with_a_zero_timeout():
    q = LinkQueue(2)
    assert q.put("a", timeout=0) and q.put("b", timeout=0)
    assert q.put("c", timeout=0) is False  # the host answers -21 instead of waiting
    assert q.full() and len(q) == 2


def test_latest_keeps_only_the_newest_per_link_and_counts_drops():
    q = LinkQueue(4)
    for i in range(5):
        q.put(("frame", i), latest_key="camera.1")
    q.put(("frame", "other"), latest_key="camera.2")
    assert [q.get(0), q.get(0)] == [("frame", 4), ("frame", "other")]
    assert q.stats()["dropped"] == {"camera.1": 4}


def test_system_items_jump_the_queue_and_flush_keeps_what_is_asked():
    q = LinkQueue(8)
    for item in ("infer-1", "frame-1", "infer-2"):
        q.put(item)
    q.put("wake", system=True)
    assert q.get(0) == "wake"
    assert q.flush(keep=lambda item: item.startswith("infer")) == 1
    assert [q.get(0), q.get(0), q.get(0)] == ["infer-1", "infer-2", None]
    assert q.stats()["flushed"] == 1


def test_remove_takes_out_a_cancelled_request():
    q = LinkQueue(8)
    for item in ("a", "b", "c"):
        q.put(item)
    assert q.remove(lambda item: item == "b") == ["b"]
    assert [q.get(0), q.get(0)] == ["a", "c"] and not q.full()


def test_close_wakes_a_blocked_producer_and_drains():
    q = LinkQueue(1)
    q.put("x")
    result = []
    t = threading.Thread(target=lambda: result.append(q.put("y")))
    t.start()
    q.close()
    t.join(5)
    assert result == [False] and q.get(0) == "x" and q.get(0) is None and q.closed
