"""Issue 15 item 17 (HTTP): what used to be an HTTP 500 or a WebSocket closed without a code is a
clear 4xx now: a chunked body over the limit, a lone UTF-16 surrogate in JSON, a binary WebSocket
frame, JSON too deeply nested for the parser."""

from __future__ import annotations

import http.client
import json
import socket

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from hardening.wire import http_request
from support import Server


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("bad-input"), config={"max_frame": 64 * 1024})
    yield s
    s.stop()


def test_a_chunked_body_over_the_limit_is_413_not_500(web):
    conn = http.client.HTTPConnection("127.0.0.1", web.http_port, timeout=20)
    chunks = (b"x" * 16 * 1024 for _ in range(8))  # 128 KiB, chunked: no Content-Length to check first
    try:
        conn.request(
            "POST", "/units/echo/infer", body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True
        )
        r = conn.getresponse()
        status, body = r.status, r.read()
    except (BrokenPipeError, ConnectionResetError):
        pytest.fail("the server dropped the connection without an answer")
    assert status == 413 and "max_frame" in json.loads(body)["error"]["message"]
    assert not any("Exception in ASGI application" in line for line in web.log)


def test_a_lone_surrogate_in_a_json_body_is_400(web):
    status, body = http_request(
        web,
        "/units/echo/infer",
        {"Content-Type": "application/json"},
        method="POST",
        body=b'{"params": {}, "data": "abc\\ud800"}',
    )
    assert status == 400 and "surrogate" in json.loads(body)["error"]["message"]
    status, body = http_request(
        web,
        "/units/echo/infer",
        {"Content-Type": "application/json"},
        method="POST",
        body=b'{"params": {}, "data": "\\ud83d\\ude00 \\\\ud800"}',
    )  # a pair, and escaped text
    assert status == 200 and json.loads(body)["text"] == "\U0001f600 \\ud800"


def test_a_binary_websocket_frame_closes_the_session_with_1003_and_the_reason(web):
    with connect(f"ws://127.0.0.1:{web.http_port}/units/echo/session", open_timeout=20) as ws:
        ws.send(b"\x00\x01binary")
        reason = json.loads(ws.recv(timeout=20))
        assert reason["status"] == 2 and "binary" in reason["error"]["message"]
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=20)
    assert e.value.rcvd is not None and e.value.rcvd.code == 1003


@pytest.mark.parametrize("frame", ['{"a":' * 100_000 + "1" + "}" * 100_000, '{"status": 3, "data": "\\udc00"}'])
def test_json_python_cannot_take_closes_the_session_with_1003(web, frame):
    with connect(f"ws://127.0.0.1:{web.http_port}/units/echo/session", open_timeout=20, max_size=None) as ws:
        ws.send(frame)
        assert json.loads(ws.recv(timeout=20))["status"] == 2
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=20)
    assert e.value.rcvd is not None and e.value.rcvd.code == 1003


def test_the_server_still_answers_after_all_this(web):
    assert http_request(web, "/health", {})[0] == 200
    with socket.create_connection(("127.0.0.1", web.port), timeout=20) as s:
        s.sendall(b'{"request_id":"1","work_id":"sys","action":"ping"}')
        assert b'"code":0' in s.recv(4096)
