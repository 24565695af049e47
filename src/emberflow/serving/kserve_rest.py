"""KServe v2 / Open Inference Protocol over REST, with Triton's binary-tensor and repository
extensions (shared/spec/serving.md §5.1). Models come from the model repository."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from emberflow.protocol.framing import has_lone_surrogate
from emberflow.serving.batching import DeadlineExceeded, QueueFull
from emberflow.serving.errors import GatewayError
from emberflow.serving.tensors import (
    DTYPES,
    TensorError,
    from_raw,
    from_values,
    off_loop,
    order_inputs,
    to_datatype,
    to_raw,
)

router = APIRouter(prefix="/v2", tags=["KServe v2"])
EXTENSIONS = ["binary_tensor_data", "model_repository"]
HEADER_LENGTH = "inference-header-content-length"


def _repo(request: Request) -> Any:
    repo = request.app.state.gateway.repository
    if repo is None:
        raise GatewayError(404, "no model repository is configured: set `model_repository: DIR` in the config")
    return repo


def _model(request: Request, name: str, version: str | None) -> Any:
    try:
        return _repo(request).get(name, version)
    except LookupError as e:
        raise GatewayError(404, str(e)) from None


@router.get("")
async def server_metadata(request: Request) -> dict:
    from emberflow import __version__

    return {"name": "emberflow", "version": __version__, "extensions": EXTENSIONS}


@router.get("/health/live")
async def live() -> dict:
    return {"live": True}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    waiting = request.app.state.gateway.loading()
    return JSONResponse({"ready": not waiting}, status_code=503 if waiting else 200)


def _metadata(mv: Any) -> dict:
    def spec(t: Any) -> dict:
        return {
            "name": t.name,
            "datatype": to_datatype(t.dtype),
            "shape": [-1 if d is None or isinstance(d, str) else int(d) for d in t.shape],
        }

    return {
        "name": mv.name,
        "versions": [mv.version],
        "platform": mv.platform,
        "inputs": [spec(t) for t in mv.inputs],
        "outputs": [spec(t) for t in mv.outputs],
    }


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(request: Request, name: str, version: str | None = None) -> dict:
    mv = _model(request, name, version)
    meta = _metadata(mv)
    meta["versions"] = sorted(_repo(request).models[name].versions, key=int)
    return meta


@router.get("/models/{name}/config")
@router.get("/models/{name}/versions/{version}/config")
async def model_config(request: Request, name: str, version: str | None = None) -> dict:
    mv = _model(request, name, version)
    p = mv.batcher.policy
    return {
        "name": name,
        "platform": mv.platform,
        "max_batch_size": p.max_batch_size,
        "dynamic_batching": {"max_queue_delay_microseconds": int(p.max_queue_delay_ms * 1000)},
        "instance_group": [{"count": p.instances, "kind": "KIND_CPU"}],
    }


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(request: Request, name: str, version: str | None = None) -> JSONResponse:
    try:
        _repo(request).get(name, version)
        return JSONResponse({"name": name, "ready": True})
    except LookupError:
        return JSONResponse({"name": name, "ready": False}, status_code=400)


@router.post("/models/{name}/infer")
@router.post("/models/{name}/versions/{version}/infer")
async def infer(request: Request, name: str, version: str | None = None) -> Response:
    mv = _model(request, name, version)
    body = await request.body()
    try:
        # big tensors are decoded in a worker thread: the event loop serves everyone else meanwhile
        header, arrays = await off_loop(len(body), _decode, body, request.headers.get(HEADER_LENGTH), mv)
    except (TensorError, ValueError, TypeError, UnicodeDecodeError, OverflowError, RecursionError) as e:
        raise GatewayError(400, str(e)) from None
    params = header.get("parameters") or {}
    if not isinstance(params, dict):
        raise GatewayError(400, '"parameters" must be an object')
    try:
        outputs = await mv.batcher.submit(arrays, timeout_s=timeout_s(params.get("timeout")))
    except QueueFull as e:
        request.app.state.gateway.metrics.rejected.labels(f"{mv.name}/{mv.version}").inc()
        raise GatewayError(429, str(e), retry_after=1) from None
    except DeadlineExceeded as e:
        raise GatewayError(504, str(e)) from None
    except ValueError as e:  # EngineError: inputs the model refuses; the message says what to fix
        raise GatewayError(400, str(e)) from None
    size = sum(np.asarray(o).nbytes for o in outputs)
    return await off_loop(size, _response, header, mv, outputs)


def timeout_s(microseconds: Any) -> float | None:
    """KServe's `parameters.timeout` (µs) in seconds. It becomes a timer on the event loop that
    every protocol shares, so only a finite number above 0 is accepted (NaN would corrupt the
    loop's timer heap; 0 or less would fail at once)."""
    if microseconds is None:
        return None
    if isinstance(microseconds, bool) or not isinstance(microseconds, (int, float)):
        raise GatewayError(400, f"parameters.timeout must be a number of microseconds, got {microseconds!r}")
    try:
        seconds = microseconds / 1e6
    except OverflowError:  # an integer of hundreds of digits
        seconds = math.inf
    if not math.isfinite(seconds) or seconds <= 0:
        raise GatewayError(
            400, f"parameters.timeout must be a finite number of microseconds above 0, got {microseconds!r}"
        )
    return seconds


def _decode(body: bytes, header_len: str | None, mv: Any) -> tuple[dict, list[np.ndarray]]:
    """The JSON header and the input tensors of an inference request (runs off the loop when big)."""
    if header_len is not None:
        n = int(header_len)
        if not 0 < n <= len(body):
            raise TensorError(f"Inference-Header-Content-Length {n} does not fit a body of {len(body)} bytes")
        text, binary = body[:n], memoryview(body)[n:]
    else:
        text, binary = body or b"{}", memoryview(b"")
    if has_lone_surrogate(text):
        raise TensorError(
            "the JSON holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape): strings must be Unicode text"
        )
    header = json.loads(text)
    if not isinstance(header, dict):
        raise TensorError("the inference request must be a JSON object")
    return header, _inputs(header, binary, mv)


def _inputs(header: dict, binary: memoryview, mv: Any) -> list[np.ndarray]:
    given = header.get("inputs")
    if not isinstance(given, list) or not given:
        raise TensorError('"inputs" must be a non-empty list of {"name", "shape", "datatype", "data"}')
    by_name: dict[str, np.ndarray] = {}
    offset = 0
    for i, t in enumerate(given):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise TensorError(f"inputs[{i}] must be an object with a name")
        datatype, shape = t.get("datatype"), t.get("shape")
        if datatype not in DTYPES:
            raise TensorError(f"inputs[{i}].datatype {datatype!r} is not one of {sorted(DTYPES)}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise TensorError(f"inputs[{i}].shape must be a list of non-negative integers")
        size = _parameters(t, f"inputs[{i}]").get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise TensorError(f"inputs[{i}]: binary_data_size {size!r} overruns the binary part")
            by_name[t["name"]] = from_raw(bytes(binary[offset : offset + size]), datatype, shape, t["name"])
            offset += size
            continue
        if "data" not in t:
            raise TensorError(f"inputs[{i}] has neither data nor binary_data_size")
        by_name[t["name"]] = from_values(t["data"], datatype, shape, f"inputs[{i}] ({t['name']})")
    return order_inputs(by_name, [s.name for s in mv.inputs], mv.name)


def _parameters(entry: dict, where: str) -> dict:
    params = entry.get("parameters") or {}
    if not isinstance(params, dict):
        raise TensorError(f"{where}.parameters must be an object")
    return params


def _response(header: dict, mv: Any, outputs: list[np.ndarray]) -> Response:
    names = [s.name for s in mv.outputs]
    wanted = header.get("outputs")
    params = header.get("parameters") or {}
    binary_all = bool(params.get("binary_data_output")) if isinstance(params, dict) else False
    if isinstance(wanted, list) and wanted:
        selected = []
        for i, o in enumerate(wanted):
            name = o.get("name") if isinstance(o, dict) else None
            if name not in names:
                raise GatewayError(400, f"unknown output {name!r}; model {mv.name} has outputs {names}")
            try:
                binary = bool(_parameters(o, f"outputs[{i}]").get("binary_data", binary_all))
            except TensorError as e:
                raise GatewayError(400, str(e)) from None
            selected.append((name, outputs[names.index(name)], binary))
    else:
        selected = [(n, a, binary_all) for n, a in zip(names, outputs)]
    out_json, blobs = [], []
    for name, arr, binary in selected:
        arr = np.asarray(arr)
        entry: dict[str, Any] = {"name": name, "datatype": to_datatype(arr.dtype), "shape": list(arr.shape)}
        if binary:
            raw = to_raw(arr)
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = arr.reshape(-1).tolist()
        out_json.append(entry)
    body: dict[str, Any] = {"model_name": mv.name, "model_version": mv.version, "outputs": out_json}
    if "id" in header:
        body["id"] = header["id"]
    head = json.dumps(body, separators=(",", ":")).encode()
    if not blobs:
        return Response(head, media_type="application/json")
    return Response(
        head + b"".join(blobs),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(head))},
    )


# --- repository extension -----------------------------------------------------------------
@router.post("/repository/index")
async def repository_index(request: Request) -> list:
    return _repo(request).index()


@router.post("/repository/models/{name}/load")
async def repository_load(request: Request, name: str) -> dict:
    repo = _repo(request)
    try:
        await repo.load(name)
    except LookupError as e:
        raise GatewayError(404, str(e)) from None
    entry = repo.models[name]
    if entry.state != "READY":
        raise GatewayError(400, f"failed to load {name}: {entry.reason}")
    return {}


@router.post("/repository/models/{name}/unload")
async def repository_unload(request: Request, name: str) -> dict:
    try:
        await _repo(request).unload(name)
    except LookupError as e:
        raise GatewayError(404, str(e)) from None
    return {}
