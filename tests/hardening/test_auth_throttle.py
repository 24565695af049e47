"""Issue 15 item 18: sys.auth is throttled. After a few wrong tokens each answer waits longer, and
after auth_max_failures the connection is dropped, so tokens cannot be guessed at 12,000 a second."""

from __future__ import annotations

import itertools

from emberflow.client import Client
from hardening.wire import Wire
from support import Server


def test_repeated_wrong_tokens_drop_the_connection(tmp_path):
    s = Server(tmp_path, config={"token": "s3cret", "auth_max_failures": 4})
    try:
        w = Wire(s.port)
        for i in range(8):  # pipelined, as a guessing loop sends them
            w.send({"request_id": f"a{i}", "work_id": "sys", "action": "auth", "data": f"guess{i}"})
        msgs = w.messages_until_closed()
        assert [m["error"]["code"] for m in msgs] == [-26] * 4  # the 5th and later were never tried
        assert "disconnecting" in msgs[-1]["data"]["detail"]
        with Client("127.0.0.1", s.port) as c:  # the right token still works at once
            c.request("sys", "auth", "sys.utf-8", "s3cret")
            assert c.request("sys", "version")["data"] == "v1.6"
    finally:
        s.stop()


def test_auth_failures_after_the_first_few_are_answered_ever_later():
    from emberflow.sys.actions import AUTH_FREE_TRIES, AUTH_MAX_DELAY, _auth_delay

    delays = [_auth_delay(n) for n in range(1, 40)]
    assert delays[:AUTH_FREE_TRIES] == [0.0] * AUTH_FREE_TRIES
    assert all(a <= b for a, b in itertools.pairwise(delays)) and delays[AUTH_FREE_TRIES] > 0
    assert delays[-1] == AUTH_MAX_DELAY


def test_failures_are_remembered_per_client_address_across_connections():
    from emberflow.sys import actions

    actions._AUTH_FAILURES.pop("192.0.2.7", None)
    counts = [actions._peer_failed("192.0.2.7") for _ in range(5)]
    assert counts == [1, 2, 3, 4, 5] and actions._peer_failed(None) == 0
    actions._AUTH_FAILURES.pop("192.0.2.7", None)
