"""Real client behaviours: each reads the server's replies its own way, all must parse them."""

from __future__ import annotations

import json
import socket
import threading

import pytest


def connect(server) -> socket.socket:
    s = socket.create_connection((server.host, server.port), timeout=60)
    return s


def test_stackflow_test_tool_style_gets_paris(server):
    """Like StackFlow tools/test_tools/test.py: setup with the qwen model name, stream inference,
    read `recv(4096)` until a newline and json.loads each message, until finish; then exit."""
    s = connect(server)

    def request(msg):
        s.sendall(json.dumps(msg).encode() + b"\n")

    def read_one():
        buf = b""
        while not buf.endswith(b"\n"):
            buf += s.recv(4096)
        return [json.loads(line) for line in buf.decode().splitlines()]

    request(
        {
            "request_id": "llm_001",
            "work_id": "llm",
            "action": "setup",
            "object": "llm.setup",
            "data": {
                "model": "qwen2.5-0.5B-prefill-20e",
                "response_format": "llm.utf-8.stream",
                "input": "llm.utf-8.stream",
                "enoutput": True,
                "max_token_len": 1023,
                "prompt": "You are a knowledgeable assistant capable of answering various questions and "
                "providing information.",
            },
        }
    )
    (setup,) = read_one()
    assert setup["error"]["code"] == 0
    work_id = setup["work_id"]
    request(
        {
            "request_id": "llm_001",
            "work_id": work_id,
            "action": "inference",
            "object": "llm.utf-8.stream",
            "data": {"delta": "What is the capital of France?", "index": 0, "finish": True},
        }
    )
    answer, finished = "", False
    while not finished:
        for m in read_one():
            assert m["request_id"] == "llm_001" and m["work_id"] == work_id
            answer += m["data"]["delta"]
            finished = m["data"]["finish"]
    assert "Paris" in answer
    request({"request_id": "llm_exit", "work_id": work_id, "action": "exit"})
    assert read_one()[0]["error"]["code"] == 0
    s.close()


def test_one_message_per_recv(server):
    """ModuleLLM-OpenAI-Plugin does json.loads(sock.recv(4096)) per request: every reply must
    arrive as exactly one message in one read."""
    s = connect(server)
    for i, action in enumerate(["ping", "version", "lsmode", "hwinfo", "cmminfo", "ping", "version2"] * 3):
        s.sendall(json.dumps({"request_id": str(i), "work_id": "sys", "action": action}).encode())
        msg = json.loads(s.recv(1 << 20))  # raises if two messages were coalesced or one was split
        assert msg["request_id"] == str(i)
    s.close()


def test_newline_reader_and_brace_counter_parse_a_whole_stream(server, llm_params):
    """UIFlow reads until a newline and splitlines(); the Arduino library counts braces and resets
    on newline. Both must see every chunk of a streamed answer."""
    s = connect(server)
    s.sendall(
        json.dumps(
            {
                "request_id": "st",
                "work_id": "llm",
                "action": "setup",
                "object": "llm.setup",
                "data": {**llm_params, "max_token_len": 30},
            }
        ).encode()
    )
    raw = b""
    while b"\n" not in raw:
        raw += s.recv(4096)
    work_id = json.loads(raw)["work_id"]
    s.sendall(
        json.dumps(
            {
                "request_id": "q",
                "work_id": work_id,
                "action": "inference",
                "object": "llm.utf-8",
                "data": 'Tell me about {braces} and "quotes".',
            }
        ).encode()
    )
    raw = b""
    while b'"finish":true' not in raw:
        raw += s.recv(4096)
    while not raw.endswith(b"\n"):
        raw += s.recv(4096)
    by_lines = [json.loads(line) for line in raw.decode().splitlines()]
    by_braces, depth, cur, in_str, esc = [], 0, "", False, False
    for ch in raw.decode():  # Arduino-style brace counter, made string-aware as a careful client would be
        if ch == "\n" and depth == 0:
            cur = ""
            continue
        cur += ch
        if in_str:
            esc = not esc and ch == "\\"
            if ch == '"' and not esc:
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                by_braces.append(json.loads(cur))
                cur = ""
    assert by_lines == by_braces
    assert [m["data"]["index"] for m in by_lines] == list(range(len(by_lines)))
    assert by_lines[-1]["data"]["finish"] is True
    s.sendall(json.dumps({"request_id": "x", "work_id": work_id, "action": "exit"}).encode())
    s.close()


def test_two_clients_get_only_their_own_outputs(server, llm_params):
    a, b = server.client(), server.client()
    wa = a.setup("echo", {"times": 3})
    wb = b.setup("echo", {"times": 2})
    ra, rb = a.infer(wa, "alpha"), b.infer(wb, "beta")
    got_a = [m["data"]["delta"] for m in a.outputs(wa, ra)]
    got_b = [m["data"]["delta"] for m in b.outputs(wb, rb)]
    assert got_a == ["alpha"] * 3 + [""] and got_b == ["beta"] * 2 + [""]
    # nothing of b's task ever reached a, and vice versa
    with pytest.raises(TimeoutError):
        a.next_message(lambda m: m["work_id"] == wb, timeout=0.5)
    with pytest.raises(TimeoutError):
        b.next_message(lambda m: m["work_id"] == wa, timeout=0.5)
    # touching a task moves its output to the toucher (StackFlow §2.5)
    b.request(wa, "taskinfo")
    rid = b.infer(wa, "moved")
    assert [m["data"]["delta"] for m in b.outputs(wa, rid)] == ["moved"] * 3 + [""]
    a.exit(wa)
    b.exit(wb)
    a.close()
    b.close()


def test_many_concurrent_clients(server):
    errors = []

    def one(i):
        try:
            with server.client() as c:
                for _ in range(20):
                    c.ping()
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
