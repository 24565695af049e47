"""A small StackFlow client for Python: what our tests, `emberflow chat` and users share.

    with Client() as c:
        llm = c.setup("llm", {"model": "qwen2.5-0.5B-prefill-20e", "response_format": "llm.utf-8.stream",
                              "input": "llm.utf-8", "enoutput": True})
        for delta in c.stream(llm, "What is the capital of France?"):
            print(delta, end="", flush=True)

A reader thread splits the byte stream into messages; calls wait for the reply whose
request_id matches, and task outputs are queued per work_id, so several tasks can run at once.
"""

from __future__ import annotations

import itertools
import json
import queue
import socket
import threading
from collections.abc import Iterator
from typing import Any

from emberflow.errors import EmberflowError
from emberflow.protocol.framing import Frame, FrameDecoder


class ServerError(EmberflowError):
    def __init__(self, msg: dict[str, Any]):
        self.msg = msg
        err = msg.get("error", {})
        self.code = err.get("code")
        self.message = err.get("message")
        detail = msg.get("data", {}).get("detail") if isinstance(msg.get("data"), dict) else None
        super().__init__(f"{self.code} {self.message}" + (f": {detail}" if detail else ""))


class Client:
    def __init__(self, host: str = "127.0.0.1", port: int = 10001, timeout: float = 30.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(None)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._held: list[dict[str, Any]] = []  # messages read while waiting for something else
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # --- transport ------------------------------------------------------------------------
    def _read(self) -> None:
        decoder = FrameDecoder()
        try:
            while data := self.sock.recv(65536):
                for ev in decoder.feed(data):
                    if isinstance(ev, Frame):
                        self._inbox.put(json.loads(ev.text))
        except OSError:
            pass
        self._inbox.put(None)  # connection closed

    def send(self, msg: dict[str, Any]) -> None:
        with self._lock:
            self.sock.sendall(json.dumps(msg, ensure_ascii=False).encode() + b"\n")

    def next_message(self, match=lambda m: True, timeout: float | None = None) -> dict[str, Any]:
        """The next message satisfying `match`; others stay queued for later calls."""
        for i, m in enumerate(self._held):
            if match(m):
                return self._held.pop(i)
        while True:
            try:
                got = self._inbox.get(timeout=self.timeout if timeout is None else timeout)
            except queue.Empty:
                raise TimeoutError("no matching message from the server") from None
            if got is None:
                self._inbox.put(None)
                raise ConnectionError("server closed the connection")
            if match(got):
                return got
            self._held.append(got)

    # --- protocol -------------------------------------------------------------------------
    def request(
        self,
        work_id: str,
        action: str,
        object: str = "None",
        data: Any = "None",
        request_id: str | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        rid = request_id or f"py-{next(self._ids)}"
        self.send({"request_id": rid, "work_id": work_id, "action": action, "object": object, "data": data})
        reply = self.next_message(lambda m: m.get("request_id") == rid, timeout)
        if check and reply.get("error", {}).get("code", 0) != 0:
            raise ServerError(reply)
        return reply

    def ping(self) -> dict[str, Any]:
        return self.request("sys", "ping")

    def setup(self, unit: str, params: dict[str, Any], timeout: float = 120.0) -> str:
        """Set up a task; returns its work_id (e.g. 'llm.1000')."""
        return self.request(unit, "setup", f"{unit}.setup", params, timeout=timeout)["work_id"]

    def exit(self, work_id: str) -> None:
        self.request(work_id, "exit")

    def infer(self, work_id: str, text: Any, object: str | None = None, request_id: str | None = None) -> str:
        """Send an inference (no reply is expected); returns the request_id outputs will carry."""
        rid = request_id or f"py-{next(self._ids)}"
        kind = work_id.split(".")[0]
        obj = object or f"{kind}.utf-8.stream"
        data = {"delta": text, "index": 0, "finish": True} if "stream" in obj and isinstance(text, str) else text
        self.send({"request_id": rid, "work_id": work_id, "action": "inference", "object": obj, "data": data})
        return rid

    def outputs(
        self, work_id: str, request_id: str | None = None, timeout: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Output messages of a task until a stream finishes (or one whole message arrives)."""
        kind = work_id.split(".")[0]

        def mine(m: dict[str, Any]) -> bool:
            if m.get("work_id") not in (work_id, kind):
                return False
            return request_id is None or m.get("request_id") == request_id or m.get("work_id") == kind

        while True:
            m = self.next_message(mine, timeout)
            if m.get("error", {}).get("code", 0) != 0:
                raise ServerError(m)
            yield m
            data = m.get("data")
            if not (isinstance(data, dict) and "finish" in data) or data.get("finish"):
                return

    def stream(self, work_id: str, text: str, timeout: float | None = None) -> Iterator[str]:
        """Ask a text task and yield answer deltas as they arrive."""
        rid = self.infer(work_id, text)
        for m in self.outputs(work_id, rid, timeout):
            data = m["data"]
            piece = data.get("delta", "") if isinstance(data, dict) else data
            if piece:
                yield piece

    def ask(self, work_id: str, text: str, timeout: float | None = None) -> str:
        return "".join(self.stream(work_id, text, timeout))

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
