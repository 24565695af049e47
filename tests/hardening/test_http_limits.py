"""Issue 15 item 14 (HTTP): a cap on open connections, answered 503 at once, and a timeout for a
request's headers (from connect, and from the first byte of a keep-alive request), answered 408:
1000 partial-header or 20,000 idle connections can no longer exhaust the daemon."""

from __future__ import annotations

import contextlib

import pytest
from websockets.sync.client import connect

from hardening.wire import Wire
from support import Server


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("limits"), config={"http_max_connections": 4, "http_header_timeout": 1.0})
    yield s
    s.stop()


def test_connections_beyond_the_cap_are_answered_503(web):
    url = f"ws://127.0.0.1:{web.http_port}/units/echo/session"
    with contextlib.ExitStack() as held:
        for _ in range(4):  # open sessions hold their connections
            held.enter_context(connect(url, open_timeout=20))
        w = Wire(web.http_port, timeout=20)
        answer = w.until_closed()  # answered and closed at once, before sending anything
        assert answer.startswith(b"HTTP/1.1 503 ") and b"http_max_connections" in answer


def test_partial_headers_are_answered_408_after_the_header_timeout(web):
    w = Wire(web.http_port, timeout=20)
    w.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ...and the rest never comes
    assert w.until_closed().startswith(b"HTTP/1.1 408 ")
    w = Wire(web.http_port, timeout=20)  # nothing at all
    assert w.until_closed().startswith(b"HTTP/1.1 408 ")


def test_the_next_request_on_a_keep_alive_connection_gets_the_header_timeout_too(web):
    w = Wire(web.http_port, timeout=20)
    w.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    while b'"ok"' not in w.buf:
        assert w._fill()
    w.buf = b""
    w.send(b"GET /health HTTP/1.1\r\n")
    assert w.until_closed().startswith(b"HTTP/1.1 408 ")
