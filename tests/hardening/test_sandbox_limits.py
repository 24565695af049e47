"""Issue 15 item 4, sys.push/pull: a per-file limit and a sandbox quota, uploads streamed to disk
(never held in memory), a cap on unfinished uploads, and pulls read a block at a time off the event
loop and sent as the client takes them."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest

from emberflow.client import Client, ServerError
from hardening.wire import wait_until
from support import Server

KIB = 1024
PARTIAL = ".emberflow-uploads"


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sandbox")
    s = Server(
        tmp, config={"max_file_size": 256 * KIB, "sandbox_quota": 600 * KIB, "max_uploads": 2, "max_frame": 128 * KIB}
    )
    s.sandbox = tmp / "files"
    yield s
    s.stop()


def _partials(server: Server) -> list:
    folder = server.sandbox / PARTIAL
    return sorted(folder.iterdir()) if folder.exists() else []


def _stream(c: Client, name: str, parts: list[bytes], finish: bool = True) -> dict:
    """Push `parts` as a base64 stream: the whole encoded once, cut where the parts meet."""
    text = base64.b64encode(b"".join(parts)).decode()
    cuts, at = [], 0
    for part in parts:
        at += len(part)
        cuts.append(len(text) if at == sum(map(len, parts)) else at * 4 // 3)
    reply, start = {}, 0
    for i, end in enumerate(cuts):
        reply = c.request(
            "sys",
            "push",
            f"sys.base64.stream.file.{name}",
            {"delta": text[start:end], "index": i, "finish": finish and i == len(parts) - 1},
        )
        start = end
    return reply


def test_a_streamed_push_over_max_file_size_is_refused_and_leaves_nothing(limited):
    with limited.client() as c:
        with pytest.raises(ServerError) as e:
            _stream(c, "too-big.bin", [b"a" * 60 * KIB] * 5)  # 300 KiB > 256 KiB
        assert e.value.code == -17 and "max_file_size" in str(e.value)
        assert not (limited.sandbox / "too-big.bin").exists() and _partials(limited) == []


def test_the_sandbox_quota_holds_for_all_files(limited):
    with limited.client() as c:
        for i in range(2):
            _stream(c, f"quota/{i}.bin", [b"q" * 64 * KIB] * 4)  # 2 x 256 KiB of the 600 KiB quota
        with pytest.raises(ServerError) as e:
            _stream(c, "quota/2.bin", [b"q" * 64 * KIB] * 2)
        assert e.value.code == -17 and "sandbox_quota" in str(e.value)
        assert not (limited.sandbox / "quota/2.bin").exists() and _partials(limited) == []
        replacing = _stream(c, "quota/0.bin", [b"r" * 64 * KIB] * 3)  # replacing a file frees its bytes
        assert replacing["error"]["message"] == f"sha256:{hashlib.sha256(b'r' * 192 * KIB).hexdigest()}"
        for i in range(2):
            c.request("sys", "push", f"sys.file.quota/{i}.bin", "")  # leave room for the other tests


def test_a_streamed_upload_goes_to_disk_as_it_arrives(limited):
    with limited.client() as c:
        _stream(c, "growing.bin", [b"g" * 39 * KIB, b"h" * 39 * KIB], finish=False)  # whole 3-byte groups
        partial = _partials(limited)
        assert len(partial) == 1 and partial[0].stat().st_size == 78 * KIB  # not held in sys's memory
        reply = c.request(
            "sys",
            "push",
            "sys.base64.stream.file.growing.bin",
            {"delta": base64.b64encode(b"i").decode(), "index": 2, "finish": True},
        )
        expected = b"g" * 39 * KIB + b"h" * 39 * KIB + b"i"
        assert reply["error"]["message"] == f"sha256:{hashlib.sha256(expected).hexdigest()}"
        assert (limited.sandbox / "growing.bin").read_bytes() == expected and _partials(limited) == []


def test_unfinished_uploads_are_capped_and_go_with_their_connection(limited):
    c = limited.client()
    for name in ("open-1.bin", "open-2.bin"):
        _stream(c, name, [b"o" * KIB], finish=False)
    with pytest.raises(ServerError) as e:
        _stream(c, "open-3.bin", [b"o" * KIB], finish=False)
    assert e.value.code == -17 and "max_uploads" in str(e.value)
    assert len(_partials(limited)) == 2
    c.close()
    assert wait_until(lambda: _partials(limited) == [])
    assert not (limited.sandbox / "open-1.bin").exists()


def test_a_base64_stream_is_decoded_piece_by_piece_exactly_as_a_whole(limited):
    content = bytes(range(256)) * 7
    text = base64.b64encode(content).decode()
    with limited.client() as c:
        parts = [text[i : i + 1001] for i in range(0, len(text), 1001)]  # cuts not on 4-character groups
        for i, part in enumerate(parts):
            reply = c.request(
                "sys",
                "push",
                "sys.base64.stream.file.b64.bin",
                {"delta": part, "index": i, "finish": i == len(parts) - 1},
            )
        assert reply["error"]["message"] == f"sha256:{hashlib.sha256(content).hexdigest()}"
        with pytest.raises(ServerError) as e:  # data after the padding is not base64
            for i, part in enumerate(["QQ==", "QUFB"]):
                c.request("sys", "push", "sys.base64.stream.file.bad.bin", {"delta": part, "index": i, "finish": i})
        assert e.value.code == -23


def test_a_whole_pull_is_limited_to_one_frame_and_a_stream_pull_is_not(limited):
    with limited.client() as c:
        _stream(c, "pull-me.bin", [b"p" * 50 * KIB] * 4)  # 200 KiB > max_frame 128 KiB
        with pytest.raises(ServerError) as e:
            c.request("sys", "pull", "sys.file.pull-me.bin")
        assert e.value.code == -17 and "stream" in str(e.value)
        c.send({"request_id": "sp", "work_id": "sys", "action": "pull", "object": "sys.stream.file.pull-me.bin"})
        pieces = []
        while not pieces or not pieces[-1]["finish"]:
            pieces.append(c.next_message(lambda m: m["request_id"] == "sp")["data"])
        assert [len(p["delta"]) for p in pieces[:-2]] == [1024] * (len(pieces) - 2)  # StackFlow's chunking
        assert base64.b64decode("".join(p["delta"] for p in pieces)) == b"p" * 200 * KIB
        c.request("sys", "push", "sys.file.pull-me.bin", "")


def test_the_partial_upload_folder_is_not_reachable(limited):
    with limited.client() as c:
        with pytest.raises(ServerError) as e:
            c.request("sys", "push", f"sys.file.{PARTIAL}/x.part", "x")
        assert e.value.code == -17


def test_existing_clients_still_push_and_pull_as_before(limited):
    """The shapes of the original protocol are unchanged (test_sys_actions covers more)."""
    with limited.client() as c:
        r = c.request("sys", "push", "sys.stream.file.greeting.txt", {"delta": "hello ", "index": 0, "finish": False})
        assert r["error"]["code"] == 0
        r = c.request("sys", "push", "sys.stream.file.greeting.txt", {"delta": "world", "index": 1, "finish": True})
        assert r["error"]["message"] == f"sha256:{hashlib.sha256(b'hello world').hexdigest()}"
        with pytest.raises(ServerError) as e:
            c.request("sys", "push", "sys.stream.file.greeting.txt", {"delta": "x", "index": 5, "finish": True})
        assert e.value.code == -25
        assert base64.b64decode(c.request("sys", "pull", "sys.file.greeting.txt")["data"]) == b"hello world"


def test_pulling_a_file_bigger_than_the_unsent_limit_arrives_whole(server):
    content = os.urandom(12 * 1024 * 1024)
    c = server.client()
    header = {
        "RAW": len(content),
        "request_id": "push-big",
        "work_id": "sys",
        "action": "push",
        "object": "sys.file.pull-big.bin",
    }
    with c._lock:
        c.sock.sendall(json.dumps(header).encode() + content)
    assert c.next_message(lambda m: m["request_id"] == "push-big")["error"]["code"] == 0
    c.send({"request_id": "pull-big", "work_id": "sys", "action": "pull", "object": "sys.stream.file.pull-big.bin"})
    pieces = []
    while True:
        try:
            data = c.next_message(lambda m: m["request_id"] == "pull-big", timeout=60)["data"]
        except ConnectionError:
            pytest.fail(f"disconnected after {len(pieces)} chunks")
        pieces.append(data["delta"])
        if data["finish"]:
            break
    assert base64.b64decode("".join(pieces)) == content
    c.close()
