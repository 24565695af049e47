"""Raw-socket helpers for the hardening tests: they need to see exactly what the server sends and
when it closes, which the Client hides."""

from __future__ import annotations

import http.client
import json
import socket

from support import eventually


class Wire:
    def __init__(self, port: int, timeout: float = 20.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.eof = False

    def send(self, data: bytes | dict) -> None:
        self.sock.sendall(json.dumps(data).encode() if isinstance(data, dict) else data)

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def message(self) -> dict:
        """The next JSON line; raises EOFError when the server closed instead."""
        while b"\n" not in self.buf:
            if not self._fill():
                raise EOFError("the server closed the connection")
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def until_closed(self) -> bytes:
        """Everything the server sends until it closes (the socket timeout bounds the wait)."""
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data

    def messages_until_closed(self) -> list[dict]:
        return [json.loads(line) for line in self.until_closed().splitlines() if line.strip()]

    def close(self) -> None:
        self.sock.close()


wait_until = eventually  # tests here read better with the old name


def ping(rid: str = "p") -> dict:
    return {"request_id": rid, "work_id": "sys", "action": "ping"}


def http_request(server, path: str, headers: dict[str, str], method: str = "GET", body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=20)
    conn.putrequest(method, path, skip_host="Host" in headers)
    for k, v in headers.items():
        conn.putheader(k, v)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def tcp_queues(local_port: int, remote_port: int) -> tuple[int, int]:
    """(bytes sent but not yet acknowledged, bytes received but not yet read by the application)
    of the TCP socket local_port -> remote_port, as the kernel counts them (/proc/net/tcp, and tcp6
    for the dual-stack sockets gRPC makes). It sees both ends of a loopback connection, the
    server's included, without touching it."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.read().splitlines()[1:]:
                local, remote, _state, queues = row.split()[1:5]
                if int(local.rsplit(":", 1)[1], 16) == local_port and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                    tx, rx = queues.split(":")
                    return int(tx, 16), int(rx, 16)
    raise LookupError(f"no TCP socket {local_port} -> {remote_port}")
