"""Issue 15 item 6: TCP connection slots. A frame left unfinished is timed out (however slowly it
trickles), a client beyond max_connections is told why before it is closed, and in-process
clients (the HTTP gateway's) do not take TCP slots."""

from __future__ import annotations

import select

import pytest

from emberflow.client import Client
from hardening.wire import Wire, ping, wait_until
from support import Server


@pytest.fixture(scope="module")
def timed(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("slots"), config={"frame_timeout": 1.0})
    yield s
    s.stop()


def test_a_frame_left_unfinished_is_closed_after_frame_timeout_however_it_trickles(timed):
    w = Wire(timed.port)
    w.send(b'{"request_id":"slow","work_id":"sys","action":"ping","data":"')
    sent = 0
    while sent < 200 and not select.select([w.sock], [], [], 0.2)[0]:
        w.send(b"x")  # one byte every 0.2 s: before the fix this held the slot for as long as it went on
        sent += 1
    msgs = w.messages_until_closed()
    assert sent < 200, "the server kept the trickling connection"
    assert msgs and msgs[0]["error"]["code"] == -2 and "frame_timeout" in msgs[0]["data"]["detail"]


def test_an_idle_connection_between_frames_stays_open(timed):
    w = Wire(timed.port)
    w.send(ping("1"))
    assert w.message()["request_id"] == "1"
    w.sock.settimeout(2.5)  # longer than the 1 s frame timeout: only unfinished frames are timed
    with pytest.raises(TimeoutError):
        w.sock.recv(1)
    w.sock.settimeout(10)
    w.send(ping("2"))
    assert w.message()["request_id"] == "2"


def test_a_full_server_says_so_before_closing_and_in_process_clients_do_not_count(tmp_path):
    s = Server(tmp_path, config={"max_connections": 2})  # the HTTP gateway holds an in-process connection
    try:
        clients = [Client("127.0.0.1", s.port, timeout=10) for _ in range(2)]
        for c in clients:
            assert c.ping()["error"]["code"] == 0  # both TCP slots are real
        third = Wire(s.port, timeout=10)
        msgs = third.messages_until_closed()
        assert len(msgs) == 1 and msgs[0]["error"]["code"] == -10 and "max_connections" in msgs[0]["data"]["detail"]
        clients[0].close()
        assert wait_until(lambda: _pings(s.port))  # a freed slot is usable again
    finally:
        s.stop()


def _pings(port: int) -> bool:
    w = Wire(port, timeout=10)
    try:
        w.send(ping("again"))
        return w.message()["error"]["code"] == 0
    except (EOFError, OSError):
        return False
    finally:
        w.close()
