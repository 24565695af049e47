"""KServe requests for the hardening tests, raw enough to send what tritonclient would refuse to."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc

from serving.repo_models import digits_inputs
from support import Server


def infer(server: Server, body: dict | bytes) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}/v2/models/digits/infer",
        data=raw,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def image(**extra) -> dict:
    x = digits_inputs(1)
    return {"name": "image", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist(), **extra}


def grpc_infer(server: Server, req):
    from emberflow.serving.kserve_proto import messages

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=messages["ModelInferResponse"].FromString,
        )
        return call(req, timeout=60)
