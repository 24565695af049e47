"""Issue 15 item 3 (StackFlow port): a web page can make a browser POST `text/plain` to
127.0.0.1:10001. A connection whose first bytes are an HTTP request line is answered 400 and
closed, so the JSON in its body never runs; StackFlow clients (JSON, junk first) are unaffected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hardening.wire import Wire, ping


def test_an_http_request_is_answered_400_and_closed_without_running_its_body(server):
    sandbox = Path(server.config_path).parent / "files"
    body = json.dumps(
        {
            "request_id": "1",
            "work_id": "sys",
            "action": "push",
            "object": "sys.file.pwned.txt",
            "data": "written by a web page",
        }
    ).encode()
    w = Wire(server.port)
    w.send(
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    answer = w.until_closed()  # the server closes: the read ends instead of timing out
    assert answer.startswith(b"HTTP/1.1 400 ")
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert error["error"]["code"] == -2 and "not HTTP" in error["data"]["detail"]
    assert not (sandbox / "pwned.txt").exists()


@pytest.mark.parametrize("start", [b"GET / HTTP/1.1\r\n", b"OPTIONS * HTTP/1.1\r\n", b"PUT http://x/ HTTP/1.1\r\n"])
def test_other_http_request_lines_are_refused_too(server, start):
    w = Wire(server.port)
    w.send(start)
    assert w.until_closed().startswith(b"HTTP/1.1 400 ")


def test_stackflow_clients_are_not_mistaken_for_http(server):
    """Junk before the first object (even a word that starts like a method) still frames as before."""
    for first in (b"", b"\r\n", b"GETTING ", b"POST:", b"get /"):
        w = Wire(server.port)
        w.send(first + json.dumps(ping("after-junk")).encode())
        msg = w.message()
        while msg.get("request_id") != "after-junk":
            msg = w.message()
        assert msg["error"]["code"] == 0
        w.close()


def test_the_http_check_is_undecided_until_enough_bytes_arrive():
    from emberflow.protocol.framing import looks_like_http

    assert looks_like_http(b"PO") is None and looks_like_http(b"POST") is None
    assert looks_like_http(b"POST /") is True and looks_like_http(b"POST x") is False
    assert looks_like_http(b'{"request_id"') is False
