"""Issue 15 item 12: heavy KServe decoding (millions of BYTES elements, a 16 MB JSON tensor) ran
on the event loop and stalled every client. Big tensors are decoded in a worker thread now. The
check is in-process and mechanical: the patched decoder waits until the event loop has had a turn,
which it can only get if the decoder is not running on the loop's thread."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from types import SimpleNamespace

import numpy as np


class _Model:
    """A stand-in model version: one BYTES input, echoed back."""

    def __init__(self) -> None:
        self.name, self.version, self.platform = "text", "1", "test"
        self.inputs = [SimpleNamespace(name="x", dtype=np.dtype(object), shape=[None])]
        self.outputs = [SimpleNamespace(name="x", dtype=np.dtype(object), shape=[None])]

        async def submit(arrays, timeout_s=None):
            return [arrays[0][:1]]
        self.batcher = SimpleNamespace(submit=submit)


def _blocking_decode(monkeypatch) -> dict:
    """Make BYTES decoding wait until the event loop has run: on the loop thread it never can."""
    from emberflow.serving import tensors

    real = tensors.decode_bytes
    seen: dict = {"loop_ran": threading.Event()}

    def decode(raw, count):
        seen["thread"] = threading.current_thread().name
        seen["loop_ran_meanwhile"] = seen["loop_ran"].wait(5)  # bounded: on the loop thread this times out
        return real(raw, count)

    monkeypatch.setattr(tensors, "decode_bytes", decode)
    return seen


async def _while_loop_ticks(seen: dict, work) -> object:
    """Run `work`; a task on the same loop sets loop_ran as soon as it gets a turn."""
    async def tick():
        while not seen["loop_ran"].is_set():
            await asyncio.sleep(0.001)
            if "thread" in seen:
                seen["loop_ran"].set()
    ticker = asyncio.create_task(tick())
    try:
        return await work
    finally:
        seen["loop_ran"].set()
        ticker.cancel()


def _bytes_tensor(count: int) -> bytes:
    return b"".join(struct.pack("<I", 3) + b"abc" for _ in range(count))


def test_a_big_rest_bytes_tensor_is_decoded_while_the_loop_serves_others(monkeypatch):
    from fastapi import FastAPI

    from emberflow.serving import kserve_rest
    from emberflow.serving.metrics import Metrics

    seen = _blocking_decode(monkeypatch)
    app = FastAPI()
    app.include_router(kserve_rest.router)
    model = _Model()
    app.state.gateway = SimpleNamespace(repository=SimpleNamespace(get=lambda name, version: model),
                                        metrics=Metrics())
    blob = _bytes_tensor(40_000)  # 280 KB
    header = json.dumps({"inputs": [{"name": "x", "shape": [40_000], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(blob)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    status, body = asyncio.run(_while_loop_ticks(seen, _asgi_post(app, "/v2/models/text/infer", header + blob, {
        "inference-header-content-length": str(len(header))})))
    assert status == 200, body
    assert seen["loop_ran_meanwhile"] and seen["thread"] != threading.main_thread().name


def test_a_big_grpc_bytes_tensor_is_decoded_while_the_loop_serves_others(monkeypatch):
    from emberflow.serving.kserve_grpc import InferenceService
    from emberflow.serving.kserve_proto import messages
    from emberflow.serving.metrics import Metrics

    seen = _blocking_decode(monkeypatch)
    model = _Model()
    gw = SimpleNamespace(cfg=SimpleNamespace(token=None), metrics=Metrics(),
                         repository=SimpleNamespace(get=lambda name, version: model))
    req = messages["ModelInferRequest"](model_name="text")
    req.inputs.add(name="x", datatype="BYTES", shape=[40_000])
    req.raw_input_contents.append(_bytes_tensor(40_000))

    class Context:
        async def abort(self, code, details):
            raise AssertionError(f"{code}: {details}")

    reply = asyncio.run(_while_loop_ticks(seen, InferenceService(gw).ModelInfer(req, Context())))
    assert reply.outputs[0].name == "x"
    assert seen["loop_ran_meanwhile"] and seen["thread"] != threading.main_thread().name


async def _asgi_post(app, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """One HTTP request straight into an ASGI app (no server, no sockets)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    sent = [False]
    out: dict = {"body": b""}

    async def receive():
        if sent[0]:
            await asyncio.Event().wait()
        sent[0] = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return out["status"], out["body"]
