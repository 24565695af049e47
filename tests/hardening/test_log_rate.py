"""Issue 15 item 14 (logs): a flood of clients must not become a flood of log lines. Each log
message is written at most log_max_per_minute times a minute; the rest are counted."""

from __future__ import annotations

import logging

import pytest

from hardening.wire import Wire
from support import Server


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("logs"), config={"max_connections": 2, "log_max_per_minute": 5})
    yield s
    s.stop()


def test_a_flood_of_refused_clients_writes_a_bounded_log(web):
    held = [Wire(web.port) for _ in range(2)]  # max_connections: 2
    for w in held:
        w.send({"request_id": "hold", "work_id": "sys", "action": "ping"})
        assert w.message()["error"]["code"] == 0
    before = len(web.log)
    for _ in range(60):
        w = Wire(web.port, timeout=20)
        assert w.messages_until_closed()[0]["error"]["code"] == -10  # each one is told why
    w = Wire(web.port, timeout=20)  # the log has caught up once this last refusal is answered
    w.messages_until_closed()
    refusals = [line for line in web.log[before:] if "refusing" in line]
    assert 1 <= len(refusals) <= 5, refusals
    for w in held:
        w.close()


def test_the_limit_is_per_message_and_says_what_it_dropped():
    from emberflow.sys.services import LogRateLimit

    now = [0.0]
    limit = LogRateLimit(2, clock=lambda: now[0])

    def record(msg: str, *args) -> logging.LogRecord:
        return logging.LogRecord("t", logging.WARNING, __file__, 1, msg, args, None)

    assert [limit.filter(record("a %d", i)) for i in range(5)] == [True, True, False, False, False]
    assert limit.filter(record("b"))  # another message has its own budget
    now[0] = 61.0
    first = record("a %d", 9)
    assert limit.filter(first) and "3 more like this" in first.getMessage()
