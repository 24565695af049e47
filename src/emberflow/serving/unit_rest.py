"""Unit-native REST and WebSocket sessions, generated from each unit's declared schema.

For every unit kind sys knows (built-in, entry point, or `units:` in the config):

    GET  /units                     every unit's schema (kind, params JSON Schema, inputs, outputs)
    POST /units/{kind}/infer        {"params": {...typed setup params...}, "data": <input>} -> outputs
    WS   /units/{kind}/session      AIGES/ASE-style session: frames with status 0 begin, 1 continue,
                                    2 end (3 = once); results stream back with status 1, then 2

The request body of each `infer` route is a pydantic model built from the unit's `Params` and
first input kind, so `/docs` documents and validates every unit without hand-written routes.
Binary inputs (audio, image, tensor) travel as base64 in JSON and as raw bytes on the bus.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import TYPE_CHECKING, Any, Optional

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from emberflow.serving.tasks import GatewayError, unit_error
from emberflow.unit.base import IO, Unit

if TYPE_CHECKING:
    from emberflow.serving.app import Gateway

log = logging.getLogger("emberflow.serving.units")

BINARY = {IO.AUDIO_PCM, IO.IMAGE, IO.TENSOR}
STATUS_BEGIN, STATUS_CONTINUE, STATUS_END, STATUS_ONCE = 0, 1, 2, 3


class UnitReply(BaseModel):
    kind: str
    outputs: list[Any] = Field(description="Output pieces in order (binary pieces as base64).")
    text: Optional[str] = Field(None, description="The pieces joined, when they are all text.")


def _data_type(io: IO | None) -> tuple[Any, str]:
    if io in BINARY:
        return str, f"{io.value} bytes, base64-encoded"
    if io in (IO.TEXT, IO.TEXT_STREAM):
        return str, "text"
    if io is IO.EVENT:
        return bool, "event"
    return Any, "any JSON value"


def unit_classes(gateway: "Gateway") -> dict[str, type[Unit]]:
    from emberflow.unit.registry import load_unit_class

    out = {}
    for kind, path in sorted(gateway.router.units.items()):
        try:
            out[kind] = load_unit_class(kind, path)
        except Exception as e:  # a broken user unit must not take the gateway down
            log.warning("unit %s has no REST routes: %s", kind, e)
    return out


def _first_input(cls: type[Unit]) -> IO | None:
    return next(iter(cls.inputs.values()), None)


def _object(kind: str, io: IO | None) -> str:
    return f"{kind}.base64" if io in BINARY else f"{kind}.utf-8"


def _encode(data: Any, io: IO | None, where: str) -> tuple[Any, bytes | None]:
    """(data for the request, raw payload) for one input value."""
    if io in BINARY:
        if not isinstance(data, str):
            raise GatewayError(400, f"{where}: {io.value} input must be a base64 string", type="invalid_request_error")
        try:
            return None, base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as e:
            raise GatewayError(400, f"{where}: not valid base64 ({e})", type="invalid_request_error") from None
    return data, None


def _setup_params(gateway: "Gateway", cls: type[Unit], params: Any) -> dict[str, Any]:
    """Only what the caller set (the model's descriptor fills the rest), plus a default model."""
    out = params.model_dump(mode="json", exclude_unset=True)
    out["enoutput"], out["input"] = True, []
    if cls.needs_model and not out.get("model"):
        model_type = cls.model_type or cls.kind
        out["model"] = gateway.default_model(model_type)
        if out["model"] is None:
            raise GatewayError(400, f"params.model is required: no installed model of type {model_type!r} "
                                    "(`emberflow models list`)", type="invalid_request_error", param="params.model")
    return out


def _pieces(msgs: list[dict[str, Any]]) -> list[Any]:
    out = []
    for m in msgs:
        d = m.get("data")
        if isinstance(d, dict) and "delta" in d and "finish" in d:
            if d["delta"] not in ("", None):
                out.append(d["delta"])
        elif d is not None and d != "None":
            out.append(d)
    return out


def build_router(gateway: "Gateway") -> APIRouter:
    router = APIRouter(prefix="/units", tags=["units"])
    classes = unit_classes(gateway)

    @router.get("")
    async def list_units() -> list[dict]:
        return [cls.schema() for cls in classes.values()]

    for kind, cls in classes.items():
        _add_unit_routes(router, gateway, kind, cls)
    return router


def _add_unit_routes(router: APIRouter, gateway: "Gateway", kind: str, cls: type[Unit]) -> None:
    io = _first_input(cls)
    data_type, data_doc = _data_type(io)
    body_model = create_model(
        f"{kind.capitalize()}InferRequest",
        __config__=ConfigDict(extra="forbid"),
        params=(cls.Params, Field(default_factory=cls.Params, description=f"setup parameters of {kind}")),
        data=(data_type, Field(..., description=f"the input: {data_doc}")),
    )
    object_name = _object(kind, io)

    async def infer(body: body_model, request: Request) -> UnitReply:  # type: ignore[valid-type]
        params = _setup_params(gateway, cls, body.params)
        data, payload = _encode(body.data, io, "data")
        msgs = await gateway.tasks.run(kind, params, data if payload is None else "", object_name, payload)
        pieces = _pieces(msgs)
        out = [base64.b64encode(p).decode() if isinstance(p, (bytes, bytearray)) else p for p in pieces]
        text = "".join(out) if out and all(isinstance(p, str) for p in out) and io not in BINARY else None
        return UnitReply(kind=kind, outputs=out, text=text)

    # annotations are strings under `from __future__ import annotations`; FastAPI needs the generated class
    infer.__annotations__ = {"body": body_model, "request": Request, "return": UnitReply}
    router.add_api_route(f"/{kind}/infer", infer, methods=["POST"], response_model=UnitReply,
                         summary=f"{kind}: {cls.description or (cls.__doc__ or '').strip().splitlines()[0]}"
                         if (cls.description or cls.__doc__) else kind)

    @router.get(f"/{kind}", summary=f"{kind}: declared schema")
    async def schema() -> dict:
        return cls.schema()

    async def session(ws: WebSocket) -> None:
        await UnitSession(gateway, kind, cls, io, object_name).run(ws)

    router.add_api_websocket_route(f"/{kind}/session", session)


class UnitSession:
    """One WebSocket session on a task of its own (set up at begin, released at close).

    Input chunks are gathered until status 2 (end) and then inferred as one input; results
    stream back as they are produced, each with status 1, and a final frame with status 2.
    """

    def __init__(self, gateway: "Gateway", kind: str, cls: type[Unit], io: IO | None, object_name: str):
        self.gw, self.kind, self.cls, self.io, self.object = gateway, kind, cls, io, object_name
        self.work_id: str | None = None
        self.params: dict[str, Any] | None = None
        self.chunks: list[Any] = []
        self.seq = 0

    async def run(self, ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                frame = await ws.receive_json()
                try:
                    await self._on_frame(ws, frame)
                except GatewayError as e:
                    await ws.send_json({"status": STATUS_END, "error": {"code": e.status, "message": e.message}})
        except WebSocketDisconnect:
            pass
        except ValueError:  # not JSON
            await ws.send_json({"status": STATUS_END, "error": {"code": 400, "message": "frames must be JSON"}})
            await ws.close(1003)
        finally:
            if self.work_id is not None:
                await self.gw.tasks.conn.request(self.work_id, "exit", timeout=5)

    async def _on_frame(self, ws: WebSocket, frame: Any) -> None:
        if not isinstance(frame, dict) or frame.get("status") not in (0, 1, 2, 3):
            raise GatewayError(400, 'each frame is {"status": 0|1|2|3, "data": ..., "params": {...} (on 0 or 3)}')
        status = frame["status"]
        if status in (STATUS_BEGIN, STATUS_ONCE):
            await self._begin(frame.get("params") or {})
        elif self.work_id is None:
            raise GatewayError(400, "send status 0 (begin) with the params first")
        if "data" in frame:
            data, payload = _encode(frame["data"], self.io, "data")
            self.chunks.append(payload if payload is not None else data)
        if status in (STATUS_END, STATUS_ONCE):
            await self._infer(ws)

    async def _begin(self, params: dict) -> None:
        if not isinstance(params, dict):
            raise GatewayError(400, "params must be an object")
        try:
            clean = _setup_params(self.gw, self.cls, self.cls.Params.model_validate(params))
        except ValidationError as e:
            raise GatewayError(400, f"invalid params: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}") from None
        self.chunks, self.seq = [], 0
        if self.work_id is not None and clean != self.params:  # new params: a fresh task
            await self.gw.tasks.conn.request(self.work_id, "exit", timeout=5)
            self.work_id = None
        self.params = clean
        if self.work_id is None:
            reply = await self.gw.tasks.conn.request(self.kind, "setup", f"{self.kind}.setup", clean)
            if reply.get("error", {}).get("code", 0) != 0:
                raise unit_error(reply)
            self.work_id = reply["work_id"]

    async def _infer(self, ws: WebSocket) -> None:
        chunks, self.chunks = self.chunks, []
        if self.io in BINARY:
            data, payload = "", b"".join(chunks)
        elif chunks and all(isinstance(c, str) for c in chunks):
            data, payload = "".join(chunks), None
        else:
            data, payload = (chunks[0] if len(chunks) == 1 else chunks), None
        conn = self.gw.tasks.conn
        rid = await conn.infer(self.work_id, data, self.object, payload)
        async for msg in conn.outputs(self.work_id, rid):
            if msg.get("error", {}).get("code", 0) != 0:
                raise unit_error(msg)
            for piece in _pieces([msg]):
                if isinstance(piece, (bytes, bytearray)):
                    piece = base64.b64encode(piece).decode()
                await ws.send_json({"status": STATUS_CONTINUE, "seq": self.seq, "data": piece})
                self.seq += 1
        await ws.send_json({"status": STATUS_END, "seq": self.seq, "data": ""})
