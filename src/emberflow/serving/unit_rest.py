"""Unit-native REST and WebSocket sessions, generated from each unit's declared schema.

For every unit kind sys knows (built-in, entry point, or `units:` in the config):

    GET  /units                     every unit's schema (kind, params JSON Schema, inputs, outputs)
    POST /units/{kind}/infer        {"params": {...typed setup params...}, "data": <input>} -> outputs
    PUT/DELETE /units/{kind}/resources/{id}, GET /units/{kind}/resources
                                    personalisation resources (units that declare `resource`)
    WS   /units/{kind}/session      AIGES/ASE-style session: frames with status 0 begin, 1 continue,
                                    2 end (3 = once), each passed on as it arrives; results stream
                                    back with status 1 (while input still streams, for units with
                                    `on_chunk`), then status 2

The request body of each `infer` route is a pydantic model built from the unit's `Params` and
first input kind, so `/docs` documents and validates every unit without hand-written routes.
Binary inputs (audio, image, tensor) travel as base64 in JSON and as raw bytes on the bus.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from emberflow.protocol.framing import has_lone_surrogate
from emberflow.serving.errors import GatewayError, unit_error
from emberflow.unit.base import IO, Unit

if TYPE_CHECKING:
    from emberflow.serving.gateway import Gateway
    from emberflow.sys.tasks import Lease


BINARY = {IO.AUDIO_PCM, IO.IMAGE, IO.TENSOR}
STATUS_BEGIN, STATUS_CONTINUE, STATUS_END, STATUS_ONCE = 0, 1, 2, 3


class UnitReply(BaseModel):
    kind: str
    outputs: list[Any] = Field(description="Output pieces in order (binary pieces as base64).")
    text: str | None = Field(None, description="The pieces joined, when they are all text.")


class ResourceReply(BaseModel):
    kind: str
    resources: list[str] = Field(description="The ids concerned: loaded, unloaded, or every loaded one.")


def _data_type(io: IO | None) -> tuple[Any, str]:
    if io in BINARY:
        return str, f"{io.value} bytes, base64-encoded"
    if io in (IO.TEXT, IO.TEXT_STREAM):
        return str, "text"
    if io is IO.EVENT:
        return bool, "event"
    return Any, "any JSON value"


def unit_classes(gateway: Gateway) -> dict[str, type[Unit]]:
    """Every unit kind that loads (a broken one gets no routes; the gateway logs why)."""
    return {kind: cls for kind in sorted(gateway.router.units) if (cls := gateway.unit_class(kind)) is not None}


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


def _setup_params(gateway: Gateway, cls: type[Unit], params: Any) -> dict[str, Any]:
    """Only what the caller set (the model's descriptor fills the rest), plus a default model."""
    out = params.model_dump(mode="json", exclude_unset=True)
    out["enoutput"], out["input"] = True, []
    if cls.needs_model and not out.get("model"):
        model_type = cls.model_type or cls.kind
        out["model"] = gateway.default_model(model_type)
        if out["model"] is None:
            raise GatewayError(
                400,
                f"params.model is required: no installed model of type {model_type!r} (`emberflow models list`)",
                type="invalid_request_error",
                param="params.model",
            )
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


def build_router(gateway: Gateway) -> APIRouter:
    router = APIRouter(prefix="/units", tags=["units"])
    classes = unit_classes(gateway)

    @router.get("")
    async def list_units() -> list[dict]:
        return [cls.schema() for cls in classes.values()]

    for kind, cls in classes.items():
        _add_unit_routes(router, gateway, kind, cls)
    return router


def _add_unit_routes(router: APIRouter, gateway: Gateway, kind: str, cls: type[Unit]) -> None:
    io = _first_input(cls)
    data_type, data_doc = _data_type(io)
    body_model = create_model(
        f"{kind.capitalize()}InferRequest",
        __config__=ConfigDict(extra="forbid"),
        params=(cls.Params, Field(default_factory=cls.Params, description=f"setup parameters of {kind}")),
        data=(data_type, Field(..., description=f"the input: {data_doc}")),
    )
    object_name = _object(kind, io)

    async def infer(body: Any, request: Request) -> UnitReply:  # `body_model`, set in __annotations__ below
        params = _setup_params(gateway, cls, body.params)
        data, payload = _encode(body.data, io, "data")
        msgs = await gateway.tasks.run(kind, params, data if payload is None else "", object_name, payload)
        pieces = _pieces(msgs)
        out = [base64.b64encode(p).decode() if isinstance(p, (bytes, bytearray)) else p for p in pieces]
        text = "".join(out) if out and all(isinstance(p, str) for p in out) and io not in BINARY else None
        return UnitReply(kind=kind, outputs=out, text=text)

    # annotations are strings under `from __future__ import annotations`; FastAPI needs the generated class
    infer.__annotations__ = {"body": body_model, "request": Request, "return": UnitReply}
    documented: dict[int | str, dict[str, Any]] = {}
    if cls.Result is not None:  # the declared result documents the reply's outputs in /docs
        result: Any = list[cls.Result]  # type: ignore[name-defined]  # a class known at run time only
        typed = create_model(f"{kind.capitalize()}Reply", __base__=UnitReply, outputs=(result, ...))
        documented = {200: {"model": typed}}
    router.add_api_route(
        f"/{kind}/infer",
        infer,
        methods=["POST"],
        response_model=UnitReply,
        responses=documented,
        summary=f"{kind}: {cls.description or (cls.__doc__ or '').strip().splitlines()[0]}"
        if (cls.description or cls.__doc__)
        else kind,
    )

    @router.get(f"/{kind}", summary=f"{kind}: declared schema")
    async def schema() -> dict:
        return cls.schema()

    async def session(ws: WebSocket) -> None:
        await UnitSession(gateway, kind, cls, io).run(ws)

    router.add_api_websocket_route(f"/{kind}/session", session)
    if cls.resource is not None:
        _add_resource_routes(router, gateway, kind, cls.resource)


def _add_resource_routes(router: APIRouter, gateway: Gateway, kind: str, resource: IO) -> None:
    """Personalisation resources of a unit (AIGES wrapperLoadRes/UnloadRes), shared by its tasks."""
    data_type, data_doc = _data_type(resource)
    body_model = create_model(
        f"{kind.capitalize()}Resource",
        __config__=ConfigDict(extra="forbid"),
        data=(data_type, Field(..., description=f"the resource: {data_doc}")),
    )

    async def call(action: str, data: dict[str, Any]) -> dict[str, Any]:
        reply = await gateway.tasks.conn.request(kind, action, f"{kind}.resource", data)
        if reply.get("error", {}).get("code", 0) != 0:
            raise unit_error(reply)  # an unknown resource id is a 404 (by its reason, not its text)
        return reply

    async def load(res_id: str, body: Any) -> ResourceReply:  # `body_model`, set in __annotations__ below
        await call("load_resource", {"id": res_id, "data": body.data})
        return ResourceReply(kind=kind, resources=[res_id])

    async def unload(res_id: str) -> ResourceReply:
        await call("unload_resource", {"id": res_id})
        return ResourceReply(kind=kind, resources=[res_id])

    async def listing() -> ResourceReply:
        return ResourceReply(kind=kind, resources=(await call("list_resources", {}))["data"])

    load.__annotations__ = {"res_id": str, "body": body_model, "return": ResourceReply}
    path = f"/{kind}/resources"
    router.add_api_route(
        path + "/{res_id}",
        load,
        methods=["PUT"],
        response_model=ResourceReply,
        summary=f"{kind}: load (or replace) a personalisation resource",
    )
    router.add_api_route(
        path + "/{res_id}",
        unload,
        methods=["DELETE"],
        response_model=ResourceReply,
        summary=f"{kind}: unload a resource",
    )
    router.add_api_route(
        path, listing, methods=["GET"], response_model=ResourceReply, summary=f"{kind}: loaded resource ids"
    )


class NotJSON(Exception):
    """A WebSocket frame that is not a JSON text frame."""


async def _receive_json(ws: WebSocket) -> Any:
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        raise NotJSON("frames must be JSON text: binary frames are not accepted (send binary data as base64)")
    if has_lone_surrogate(text.encode()):
        raise NotJSON("the JSON holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape)")
    try:
        return json.loads(text)
    except RecursionError:
        raise NotJSON("the JSON is nested too deeply") from None
    except ValueError:
        raise NotJSON("frames must be JSON") from None


class UnitSession:
    """One WebSocket session on a task of its own (an exclusive lease, set up at begin,
    released at close).

    Each input frame goes to the task as soon as it arrives, as a StackFlow streamed input
    (`{"delta", "index", "finish"}`). Units with `on_chunk` answer while input still streams
    (an ASR's partial transcripts); others see the joined input at the end. Results go back as
    they are produced with status 1, and a status 2 frame ends each answer.
    """

    def __init__(self, gateway: Gateway, kind: str, cls: type[Unit], io: IO | None):
        self.gw, self.kind, self.cls, self.io = gateway, kind, cls, io
        self.object = f"{_object(kind, io)}.stream"
        self.lease: Lease | None = None
        self.params: dict[str, Any] | None = None
        self.index = 0  # of the next chunk of the input being streamed
        self.rid: str | None = None
        self.reader: asyncio.Task | None = None
        self.seq = 0

    async def run(self, ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                frame = await _receive_json(ws)
                try:
                    await self._on_frame(ws, frame)
                except GatewayError as e:
                    await ws.send_json({"status": STATUS_END, "error": {"code": e.status, "message": e.message}})
        except WebSocketDisconnect:
            pass
        except NotJSON as e:  # the session ends with the reason and close code 1003 (unsupported data)
            await ws.send_json({"status": STATUS_END, "error": {"code": 400, "message": str(e)}})
            await ws.close(1003)
        finally:
            if self.reader is not None:
                self.reader.cancel()
            if self.lease is not None:
                await self.gw.tasks.close_session(self.lease)

    async def _on_frame(self, ws: WebSocket, frame: Any) -> None:
        if not isinstance(frame, dict) or frame.get("status") not in (0, 1, 2, 3):
            raise GatewayError(400, 'each frame is {"status": 0|1|2|3, "data": ..., "params": {...} (on 0 or 3)}')
        status = frame["status"]
        starts = status in (STATUS_BEGIN, STATUS_ONCE)
        if starts and self.index:
            raise GatewayError(400, "the input being streamed has not ended: send status 2 (end) first")
        if not starts and not self.index:
            raise GatewayError(400, "begin each input with status 0 (begin) or 3 (a one-frame input) and its params")
        if starts:
            if self.reader is not None and not self.reader.done():
                await self.reader  # the previous answer is still streaming back: it goes out first
            await self._begin(frame.get("params") or {})
        last = status in (STATUS_END, STATUS_ONCE)
        data, payload = _encode(frame["data"], self.io, "data") if "data" in frame else ("", None)
        conn = self.gw.tasks.sessions
        if starts:
            self.rid = conn.new_request_id()
            self.reader = asyncio.create_task(self._forward(ws, self.rid))
        assert self.lease is not None and self.rid is not None
        await conn.infer(
            self.lease.work_id,
            {"delta": "" if data is None else data, "index": self.index, "finish": last},
            self.object,
            payload,
            rid=self.rid,
        )
        self.index = 0 if last else self.index + 1

    async def _begin(self, params: dict) -> None:
        if not isinstance(params, dict):
            raise GatewayError(400, "params must be an object")
        clean = self._session_params(params)
        self.seq = 0
        if self.lease is not None and (clean != self.params or not self.lease.alive):  # a fresh task
            await self.gw.tasks.close_session(self.lease)
            self.lease = None
        self.params = clean
        if self.lease is None:
            self.lease = await self.gw.tasks.open_session(self.kind, clean)

    def _session_params(self, params: dict) -> dict[str, Any]:
        """The caller's params; without a response_format, the unit's streaming one when it has
        one (its default plus `.stream`), so partial results can flow back during the session."""
        try:
            parsed = self.cls.Params.model_validate(params)
            if "response_format" not in params and not parsed.streams_output:
                try:
                    parsed = self.cls.Params.model_validate(
                        {**params, "response_format": f"{parsed.response_format}.stream"}
                    )
                except ValidationError:
                    pass  # the unit has no streaming format: one answer at the end
        except ValidationError as e:
            raise GatewayError(400, f"invalid params: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}") from None
        clean = _setup_params(self.gw, self.cls, parsed)
        clean["response_format"] = parsed.response_format
        return clean

    async def _forward(self, ws: WebSocket, rid: str) -> None:
        """Results of one streamed input, sent back as they come, until its answer ends."""
        assert self.lease is not None
        try:
            async for msg in self.gw.tasks.sessions.outputs(self.lease.work_id, rid):
                if msg.get("error", {}).get("code", 0) != 0:
                    err = unit_error(msg)
                    self.index = 0  # the unit dropped the stream (e.g. bad chunk): the next begins anew
                    await ws.send_json({"status": STATUS_END, "error": {"code": err.status, "message": err.message}})
                    return
                for piece in _pieces([msg]):
                    if isinstance(piece, (bytes, bytearray)):
                        piece = base64.b64encode(piece).decode()
                    await ws.send_json({"status": STATUS_CONTINUE, "seq": self.seq, "data": piece})
                    self.seq += 1
            await ws.send_json({"status": STATUS_END, "seq": self.seq, "data": ""})
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client left; the session's exit stops the task
        except TimeoutError:
            await ws.send_json({"status": STATUS_END, "error": {"code": 504, "message": "no result in time"}})
