"""Issue 15 item 7: clients that stop reading. Past max_unsent (or after send_timeout without
taking anything) the client is aborted, not closed (close() waits forever to flush), and a single
message bigger than the limit is handed to the transport in slices as the client reads, never whole;
only what waits behind it counts against the limit, so a client that reads is never dropped for it."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct

import psutil
import pytest

from hardening.wire import Wire, ping, wait_until
from support import Server


def test_a_client_that_reads_gets_a_message_bigger_than_max_unsent_and_what_follows(tmp_path):
    """A whole-file pull answers in one message five times max_unsent, and a ping pipelined behind
    it is answered while that message is still on its way. The client reads all along, so it gets
    both, complete: the big message moves as the client reads, and only what waits behind it
    counts against max_unsent (a client that stops in the middle of it meets send_timeout)."""
    s = Server(tmp_path, config={"max_unsent": 1024 * 1024})
    try:
        content = os.urandom(4 * 1024 * 1024)
        w = _with_file(s, "big.bin", content)
        w.send({"request_id": "pull", "work_id": "sys", "action": "pull", "object": "sys.file.big.bin"})
        w.send(ping("after"))
        pulled = w.message()
        assert pulled["request_id"] == "pull" and base64.b64decode(pulled["data"]) == content
        assert w.message()["request_id"] == "after"
    finally:
        s.stop()


def test_small_messages_are_still_one_write_each(tmp_path):
    """Clients that json.loads(sock.recv(...)) rely on a message arriving whole. With TCP_NODELAY
    each write() the server makes leaves at once as its own TCP segment, so the client's kernel
    counts one data segment per message (TCP_INFO), and one recv() returns exactly the message."""
    s = Server(tmp_path)
    try:
        sizes = [10, 1000, 5000, 12_000]  # replies of 0.3 to 16 KB (base64 and the envelope), under 64 KiB
        w = _with_file(s, "f10", os.urandom(10))
        for n in sizes[1:]:
            _push(w, f"f{n}", os.urandom(n))
        for _ in range(5):
            for n in sizes:
                before = _data_segments_in(w.sock)
                w.send({"request_id": f"pull{n}", "work_id": "sys", "action": "pull", "object": f"sys.file.f{n}"})
                data = w.sock.recv(1 << 20)
                assert data.endswith(b"\n") and json.loads(data)["request_id"] == f"pull{n}"
                assert _data_segments_in(w.sock) - before == 1, f"a reply of {len(data)} bytes came in pieces"
    finally:
        s.stop()


def test_a_client_that_stops_reading_is_aborted_not_closed(tmp_path):
    """Pipelined whole-file pulls the client never reads pile up past max_unsent (send_timeout is
    far away). close() would keep the socket until everything was flushed, which a client that does
    not read never allows; the server aborts it: its socket is gone at once, and the client's next
    request meets a reset (ECONNRESET), not a server still holding the connection."""
    s = Server(tmp_path, config={"max_unsent": 256 * 1024, "send_timeout": 600})
    try:
        w = _with_file(s, "f.bin", os.urandom(512 * 1024))
        w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for i in range(16):  # 11 MiB of replies: more than the kernel buffers hold beside the limit
            w.send({"request_id": f"pull{i}", "work_id": "sys", "action": "pull", "object": "sys.file.f.bin"})
        mine = w.sock.getsockname()
        assert wait_until(lambda: not _server_has_connection(s, mine))  # the slot is free
        assert any("not reading" in line for line in s.log)
        w.send(ping("late"))
        with pytest.raises(ConnectionResetError):
            while w.sock.recv(65536):  # what the kernel had already buffered for the client, then the reset
                pass
    finally:
        s.stop()


def test_a_client_that_takes_nothing_for_send_timeout_loses_its_slot(tmp_path):
    s = Server(tmp_path, config={"max_unsent": 256 * 1024, "send_timeout": 1.0})
    try:
        w = _with_file(s, "big.bin", os.urandom(4 * 1024 * 1024))
        w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # a stream of replies (the file, pulled back), and the client never reads them
        w.send({"request_id": "pull", "work_id": "sys", "action": "pull", "object": "sys.stream.file.big.bin"})
        mine = w.sock.getsockname()
        assert wait_until(lambda: not _server_has_connection(s, mine), timeout=30)  # the slot is free
        assert any("send_timeout" in line or "not reading" in line for line in s.log)
    finally:
        s.stop()


def _with_file(server: Server, name: str, content: bytes) -> Wire:
    """A connection that has pushed `content` as sys.file.<name>."""
    w = Wire(server.port)
    _push(w, name, content)
    return w


def _push(w: Wire, name: str, content: bytes) -> None:
    w.send(
        json.dumps(
            {
                "RAW": len(content),
                "request_id": "push",
                "work_id": "sys",
                "action": "push",
                "object": f"sys.file.{name}",
            }
        ).encode()
        + content
    )
    assert w.message()["error"]["code"] == 0


def _data_segments_in(sock: socket.socket) -> int:
    """TCP segments with data this socket has received (struct tcp_info's tcpi_data_segs_in)."""
    return struct.unpack_from("I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), 152)[0]


def _server_has_connection(server: Server, client_addr) -> bool:
    return any(
        c.raddr and tuple(c.raddr) == tuple(client_addr) and c.status == psutil.CONN_ESTABLISHED
        for c in psutil.Process(server.proc.pid).net_connections(kind="tcp")
    )
