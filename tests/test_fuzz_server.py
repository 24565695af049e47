"""Property-based fuzzing of the request handler through the real server: random bytes, broken
JSON, wrong types and huge fields. The server never crashes, answers with the right error, and
the same connection keeps working."""

from __future__ import annotations

import json
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import Server

pytestmark = pytest.mark.slow

scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=30)
values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=8
)
actions = st.sampled_from(
    [
        "ping",
        "setup",
        "exit",
        "link",
        "unlink",
        "pause",
        "work",
        "taskinfo",
        "inference",
        "lsmode",
        "nosuch",
        "push",
        "pull",
        "uartsetup",
        "unit_call",
        "bashexec",
        "",
    ]
)
work_ids = st.sampled_from(
    ["sys", "", "llm", "llm.1000", "echo", "echo.99999", "nosuch", "sys.1", "kws.1001", ".", "llm.", "echo.abc"]
) | st.text(max_size=12)
requests = st.fixed_dictionaries(
    {"request_id": st.text(max_size=10) | values, "work_id": work_ids | values, "action": actions | values},
    optional={
        "object": st.sampled_from(
            ["None", "llm.utf-8", "llm.utf-8.stream", "echo.base64", "sys.file./x", "sys.base64.file.a.txt", ""]
        )
        | values,
        "data": values | st.fixed_dictionaries({"delta": values, "index": values, "finish": values}),
    },
)


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""

    def roundtrip_ping(self, rid: str) -> list[dict]:
        """Send a ping and return every message up to and including its reply."""
        self.sock.sendall(json.dumps({"request_id": rid, "work_id": "sys", "action": "ping"}).encode())
        seen = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                assert chunk, "server closed the connection"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            seen.append(msg)
            if msg.get("request_id") == rid and msg.get("work_id") == "sys" and "object" in msg:
                return seen


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    """A server of its own: random setups leave echo and ticker tasks behind, which would fill
    the task slots of tests that share the session's server."""
    server = Server(tmp_path_factory.mktemp("fuzz"))
    c = Conn(server.port)
    c.roundtrip_ping("warmup")
    yield c
    c.sock.close()
    server.stop()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes(conn, data):
    conn.sock.sendall(data + b'"}}}}}}\n')  # close whatever string/object the junk opened
    for msg in conn.roundtrip_ping("after-bytes"):
        assert isinstance(msg["error"]["code"], int)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests)
def test_wrong_types_and_values(conn, req):
    conn.sock.sendall(json.dumps(req).encode())
    seen = conn.roundtrip_ping("after-req")
    valid = all(isinstance(req.get(k), str) for k in ("request_id", "work_id", "action"))
    if not valid:
        errors = [m for m in seen[:-1] if m["request_id"] == "0"]
        assert errors and errors[0]["error"]["code"] == -2, seen
    for m in seen:
        assert m["error"]["code"] in (0, -1, -2, -3, -4, -5, -6, -9, -11, -17, -18, -20, -21, -22, -23, -25), m


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=17 * 1024 * 1024, max_value=18 * 1024 * 1024))
def test_huge_fields(conn, size):
    conn.sock.sendall(b'{"request_id":"big","work_id":"sys","action":"ping","data":"' + b"A" * size + b'"}')
    seen = conn.roundtrip_ping("after-big")
    assert any(m["error"]["code"] == -2 and "limit" in m["data"]["detail"] for m in seen[:-1])


def test_deeply_nested_json(conn):
    conn.sock.sendall(b'{"a":' * 100000 + b"1" + b"}" * 100000)
    seen = conn.roundtrip_ping("after-deep")
    assert seen[0]["error"]["code"] == -2
