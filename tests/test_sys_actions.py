"""sys actions beyond the transcripts: file sandbox, token auth, reboot."""

from __future__ import annotations

import base64
import hashlib

import pytest

from emberflow.client import ServerError
from support import Server


def test_push_and_pull_stay_inside_the_sandbox(server):
    c = server.client()
    content = bytes(range(256)) * 20
    b64 = base64.b64encode(content).decode()
    r = c.request("sys", "push", "sys.base64.file.models/blob.bin", b64)
    assert r["error"]["message"] == f"sha256:{hashlib.sha256(content).hexdigest()}"
    # chunked upload, as the stream variant sends it
    for i, part in enumerate(["hello ", "world"]):
        r = c.request("sys", "push", "sys.stream.file.greeting.txt", {"delta": part, "index": i, "finish": i == 1})
    assert r["error"]["message"] == f"sha256:{hashlib.sha256(b'hello world').hexdigest()}"
    assert base64.b64decode(c.request("sys", "pull", "sys.file.models/blob.bin")["data"]) == content
    # pull as a stream: 1024-character chunks, then an empty final chunk
    rid = "pull-stream"
    c.send({"request_id": rid, "work_id": "sys", "action": "pull", "object": "sys.stream.file.models/blob.bin"})
    chunks = []
    while not chunks or not chunks[-1]["finish"]:
        chunks.append(c.next_message(lambda m: m["request_id"] == rid)["data"])
    assert base64.b64decode("".join(ch["delta"] for ch in chunks)) == content
    for path in ["sys.file./etc/passwd", "sys.file.../../escape.txt", "sys.file.a/../../x"]:
        with pytest.raises(ServerError) as e:
            c.request("sys", "pull" if "passwd" in path else "push", path, "x")
        assert e.value.code == -17
    with pytest.raises(ServerError) as e:
        c.request("sys", "pull", "sys.file.nothing-here")
    assert e.value.code == -17 and e.value.message == "file does not exist."


def test_refused_actions_say_why(server):
    c = server.client()
    for action in ("bashexec", "rmmode", "update", "upgrade"):
        with pytest.raises(ServerError) as e:
            c.request("sys", action, "sys.utf-8", "ls")
        assert e.value.code == -3 and "disabled in emberflow" in e.value.message


def test_token_is_required_when_configured(tmp_path):
    s = Server(tmp_path, config={"token": "s3cret"})
    try:
        c = s.client()
        c.ping()  # allowed: clients probe with ping before anything else
        with pytest.raises(ServerError) as e:
            c.request("sys", "version")
        assert e.value.code == -26
        with pytest.raises(ServerError):
            c.request("sys", "auth", "sys.utf-8", "wrong")
        c.request("sys", "auth", "sys.utf-8", "s3cret")
        assert c.request("sys", "version")["data"] == "v1.6"
    finally:
        s.stop()


@pytest.mark.slow
def test_reboot_restarts_the_service(fresh_server, llm_params):
    c = fresh_server.client()
    c.setup("echo", {})
    seen = fresh_server.listen_count
    r = c.request("sys", "reboot")
    assert r["error"]["message"] == "rebooting ..."
    fresh_server.wait_listening_count(seen + 1)
    assert fresh_server.proc.poll() is None  # same process, re-executed
    c2 = fresh_server.client()
    assert c2.request("echo", "taskinfo")["data"] == []  # a fresh service: no tasks
    assert c2.setup("echo", {}) == "echo.1000"
