"""Issue 15 item 12: heavy KServe decoding (millions of BYTES elements) ran on the event loop and
stalled every client. Big tensors are decoded in a worker thread now.

A real string model (it counts the strings it is given) gets a binary BYTES tensor of four million
elements, over REST and over gRPC, while a StackFlow client pings sys one ping at a time. What is
counted: pings answered from the moment the server has read the whole request until its answer.
Decoding on the loop leaves only the loop's few free moments in that span (2 to 16 pings in runs
with the fix reverted); decoding off the loop, the loop keeps answering (over a thousand)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

import grpc
import psutil
import pytest

from hardening.wire import Wire, ping, tcp_queues, wait_until
from serving.repo_models import add_model, make_count_model
from support import Server

ELEMENTS = 4_000_000
RAW = b"\0\0\0\0" * ELEMENTS  # empty strings: decoding costs per element, the bytes would only add upload
AT_LEAST = 100  # pings answered while the request is decoded: far above what a stalled loop leaves


@pytest.fixture(scope="module")
def counting(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kserve-strings")
    add_model(tmp / "models", "count", 1, make_count_model(tmp / "count.onnx"))
    s = Server(tmp, config={"model_repository": str(tmp / "models"), "max_frame": 64 * 1024 * 1024})
    yield s
    s.stop()


def test_a_big_rest_bytes_tensor_is_decoded_while_the_loop_serves_others(counting):
    header = json.dumps(
        {
            "inputs": [
                {"name": "text", "shape": [ELEMENTS], "datatype": "BYTES", "parameters": {"binary_data_size": len(RAW)}}
            ]
        }
    ).encode()
    conn = http.client.HTTPConnection("127.0.0.1", counting.http_port, timeout=120)
    conn.connect()

    def infer() -> tuple[int, dict]:
        conn.request(
            "POST", "/v2/models/count/infer", header + RAW, {"Inference-Header-Content-Length": str(len(header))}
        )
        r = conn.getresponse()
        return r.status, json.loads(r.read())

    try:
        (status, answer), pings = _pings_answered_once_read(
            counting, conn.sock.fileno(), counting.http_port, len(header) + len(RAW), infer
        )
    finally:
        conn.close()
    assert status == 200 and answer["outputs"][0]["data"] == [ELEMENTS], answer
    assert pings >= AT_LEAST, f"{pings} pings answered while the tensor was decoded"


def test_a_big_grpc_bytes_tensor_is_decoded_while_the_loop_serves_others(counting):
    from emberflow.serving.kserve_proto import messages

    req = messages["ModelInferRequest"](model_name="count")
    req.inputs.add(name="text", datatype="BYTES", shape=[ELEMENTS])
    req.raw_input_contents.append(RAW)
    with grpc.insecure_channel(
        f"127.0.0.1:{counting.grpc_port}", options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=messages["ModelInferResponse"].FromString,
        )
        (mine,) = [
            c
            for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and c.raddr.port == counting.grpc_port and c.status == psutil.CONN_ESTABLISHED
        ]
        reply, pings = _pings_answered_once_read(
            counting, mine.fd, counting.grpc_port, req.ByteSize(), lambda: call(req, timeout=120)
        )
    assert struct.unpack("<q", reply.raw_output_contents[0]) == (ELEMENTS,)
    assert pings >= AT_LEAST, f"{pings} pings answered while the tensor was decoded"


def _pings_answered_once_read(
    server: Server, fd: int, server_port: int, size: int, request: Callable[[], Any]
) -> tuple[Any, int]:
    """Run `request()` (it returns with the response) while a StackFlow client pings sys one ping
    at a time. Returns its result and the pings answered between the moment the server had read
    `size` more bytes of the connection `fd` (what its kernel acknowledged, less what still waits
    unread) and the response. Before that moment the loop is only receiving, free to answer pings."""
    port, acked_before = _acked(fd)
    answered = [0]
    stop = threading.Event()

    def pinger() -> None:
        w = Wire(server.port)
        while not stop.is_set():
            w.send(ping())
            w.message()
            answered[0] += 1
        w.close()

    result: dict[str, Any] = {}

    def send() -> None:
        try:
            result["reply"] = request()
        except Exception as e:  # raised again in the test's thread
            result["error"] = e
        result["answered"] = answered[0]

    threads = [threading.Thread(target=pinger), threading.Thread(target=send)]
    for t in threads:
        t.start()
    try:
        assert wait_until(
            lambda: _acked(fd)[1] - acked_before - tcp_queues(server_port, port)[1] >= size, timeout=60, step=0.001
        ), "the server never read the whole request"
        read = answered[0]
        threads[1].join(120)
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    if "error" in result:
        raise result["error"]
    return result["reply"], result["answered"] - read


def _acked(fd: int) -> tuple[int, int]:
    """(local port, bytes the peer has acknowledged: struct tcp_info's tcpi_bytes_acked) of the TCP
    socket `fd`, which may belong to a library (gRPC's), so it is read through a duplicate."""
    with socket.socket(fileno=os.dup(fd)) as s:
        return s.getsockname()[1], struct.unpack_from("Q", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), 120)[
            0
        ]
