"""Issue 15 item 7: clients that stop reading. Past max_unsent (or after send_timeout without
taking anything) the client is aborted, not closed (close() waits forever to flush), and a single
message bigger than the limit is handed to the transport in slices as the client reads, never whole."""

from __future__ import annotations

import asyncio
import json
import os
import socket

import psutil

from emberflow.sys.config import Config
from hardening.fakes import tcp_protocol
from hardening.wire import Wire, wait_until
from support import Server


def test_a_message_bigger_than_the_unsent_limit_is_handed_over_in_slices_as_the_client_reads():
    async def main():
        cfg = Config(max_unsent=1024 * 1024)
        proto, t = tcp_protocol(cfg)
        message = os.urandom(5 * 1024 * 1024)  # 5x the unsent limit, in one message
        proto._write(message)
        while t.buffered or proto._outbox:
            assert t.buffered <= t.HIGH + 64 * 1024  # never the whole message in the transport
            t.drain(32 * 1024)
        assert bytes(t.data) == message and not t.aborted  # nothing lost for a client that reads
        assert max(t.writes) <= 64 * 1024
        proto.connection_lost(None)

    asyncio.run(main())


def test_small_messages_are_still_one_write_each():
    async def main():
        proto, t = tcp_protocol(Config())
        for i in range(3):
            proto._write(b'{"n":%d}\n' % i)
        assert t.writes == [8, 8, 8]  # clients that json.loads(sock.recv()) rely on it
        proto.connection_lost(None)

    asyncio.run(main())


def test_a_client_that_stops_reading_is_aborted_not_closed():
    async def main():
        cfg = Config(max_unsent=256 * 1024, send_timeout=30)
        proto, t = tcp_protocol(cfg)
        for _ in range(100):  # replies pile up; the client reads none of them
            proto._write(b"x" * 16 * 1024)
            if t.closing:
                break
        assert t.aborted and not t.closed  # close() would wait for the client to read, forever
        assert t.peak <= cfg.max_unsent + 64 * 1024

    asyncio.run(main())


def test_a_client_that_takes_nothing_for_send_timeout_loses_its_slot(tmp_path):
    s = Server(tmp_path, config={"max_unsent": 256 * 1024, "send_timeout": 1.0})
    try:
        content = os.urandom(4 * 1024 * 1024)
        w = Wire(s.port)
        w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        header = {"RAW": len(content), "request_id": "push", "work_id": "sys", "action": "push",
                  "object": "sys.file.big.bin"}
        w.send(json.dumps(header).encode() + content)
        assert w.message()["error"]["code"] == 0
        # a stream of replies (the file, pulled back), and the client never reads them
        w.send({"request_id": "pull", "work_id": "sys", "action": "pull", "object": "sys.stream.file.big.bin"})
        mine = w.sock.getsockname()
        assert wait_until(lambda: not _server_has_connection(s, mine), timeout=30)  # the slot is free
        assert any("send_timeout" in line or "not reading" in line for line in s.log)
    finally:
        s.stop()


def _server_has_connection(server: Server, client_addr) -> bool:
    return any(c.raddr and tuple(c.raddr) == tuple(client_addr) and c.status == psutil.CONN_ESTABLISHED
               for c in psutil.Process(server.proc.pid).net_connections(kind="tcp"))
