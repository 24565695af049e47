"""KServe v2 gRPC (`inference.GRPCInferenceService`) on grpc.aio, in the daemon's event loop.

Same models and batchers as the REST routes. Tensors arrive as `raw_input_contents` (what
tritonclient sends) or typed `contents`; outputs go back as `raw_output_contents`. The API key,
when configured, is read from the `authorization: Bearer <key>` metadata.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np

from emberflow.serving.batching import DeadlineExceeded, QueueFull
from emberflow.serving.kserve_proto import RPCS, SERVICE, messages
from emberflow.serving.tensors import TensorError, from_raw, from_values, off_loop, order_inputs, to_datatype, to_raw

if TYPE_CHECKING:
    from emberflow.serving.gateway import Gateway
    from emberflow.sys.config import Config

# typed `contents` field per datatype
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
PUBLIC_RPCS = {"ServerLive", "ServerReady"}


class InferenceService:
    def __init__(self, gateway: Gateway):
        self.gw = gateway
        cfg = gateway.cfg
        self.principal_for = cfg.principal_for if cfg.auth_required else None  # None: no token configured

    async def _check(self, rpc: str, context: grpc.aio.ServicerContext) -> None:
        if self.principal_for is None or rpc in PUBLIC_RPCS:
            return
        value = dict(context.invocation_metadata() or ()).get("authorization", "")
        if isinstance(value, bytes):  # binary metadata: never a Bearer header
            value = value.decode("latin-1")
        scheme, _, key = value.partition(" ")
        if scheme.lower() != "bearer" or self.principal_for(key.strip()) is None:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or wrong API key: send metadata `authorization: Bearer <token>`",
            )

    def _model(self, name: str, version: str) -> Any:
        return self.gw.repository.get(name, version or None)

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return messages["ServerLiveResponse"](live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return messages["ServerReadyResponse"](ready=not self.gw.loading())

    async def ModelReady(self, request: Any, context: Any) -> Any:
        try:
            self._model(request.name, request.version)
            return messages["ModelReadyResponse"](ready=True)
        except LookupError:
            return messages["ModelReadyResponse"](ready=False)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        from emberflow import __version__
        from emberflow.serving.kserve_rest import EXTENSIONS

        return messages["ServerMetadataResponse"](name="emberflow", version=__version__, extensions=EXTENSIONS)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        mv = await self._found(request.name, request.version, context)
        tm = messages["ModelMetadataResponse.TensorMetadata"]

        def spec(t: Any) -> Any:
            return tm(
                name=t.name,
                datatype=to_datatype(t.dtype),
                shape=[-1 if d is None or isinstance(d, str) else int(d) for d in t.shape],
            )

        return messages["ModelMetadataResponse"](
            name=mv.name,
            versions=sorted(self.gw.repository.models[mv.name].versions, key=int),
            platform=mv.platform,
            inputs=[spec(t) for t in mv.inputs],
            outputs=[spec(t) for t in mv.outputs],
        )

    async def _found(self, name: str, version: str, context: Any) -> Any:
        try:
            return self._model(name, version)
        except LookupError as e:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(e))

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        mv = await self._found(request.model_name, request.model_version, context)
        try:
            # big tensors are decoded in a worker thread: the event loop serves everyone else meanwhile
            arrays = await off_loop(request.ByteSize(), self._inputs, request, mv)
            timeout = _timeout_s(request.parameters)
        except (TensorError, ValueError, TypeError, OverflowError) as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        try:
            outputs = await mv.batcher.submit(arrays, timeout_s=timeout)
        except QueueFull as e:
            self.gw.metrics.rejected.labels(f"{mv.name}/{mv.version}").inc()
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
        except DeadlineExceeded as e:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(e))
        except ValueError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        names = [s.name for s in mv.outputs]
        wanted = [o.name for o in request.outputs] or names
        unknown = [n for n in wanted if n not in names]
        if unknown:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown outputs {unknown}; model has {names}")
        reply = messages["ModelInferResponse"](model_name=mv.name, model_version=mv.version, id=request.id)
        for name in wanted:
            arr = np.asarray(outputs[names.index(name)])
            reply.outputs.add(name=name, datatype=to_datatype(arr.dtype), shape=list(arr.shape))
            reply.raw_output_contents.append(to_raw(arr))
        return reply

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        reply = messages["RepositoryIndexResponse"]()
        for entry in self.gw.repository.index():
            if request.ready and entry["state"] != "READY":
                continue
            reply.models.add(
                name=entry["name"],
                version=entry.get("version", ""),
                state=entry["state"],
                reason=entry.get("reason", ""),
            )
        return reply

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        repo = self.gw.repository
        try:
            await repo.load(request.model_name)
        except LookupError as e:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        entry = repo.models[request.model_name]
        if entry.state != "READY":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"failed to load {request.model_name}: {entry.reason}"
            )
        return messages["RepositoryModelLoadResponse"]()

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        try:
            await self.gw.repository.unload(request.model_name)
        except LookupError as e:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        return messages["RepositoryModelUnloadResponse"]()

    @staticmethod
    def _inputs(request: Any, mv: Any) -> list[np.ndarray]:
        raw = list(request.raw_input_contents)
        if raw and len(raw) != len(request.inputs):
            raise TensorError(f"{len(request.inputs)} inputs but {len(raw)} raw_input_contents")
        by_name = {}
        for i, t in enumerate(request.inputs):
            shape = list(t.shape)
            if raw:
                by_name[t.name] = from_raw(raw[i], t.datatype, shape, t.name)
                continue
            if t.datatype not in CONTENTS:
                raise TensorError(f"{t.name}: datatype {t.datatype!r} is not one of {sorted(CONTENTS)}")
            by_name[t.name] = from_values(list(getattr(t.contents, CONTENTS[t.datatype])), t.datatype, shape, t.name)
        return order_inputs(by_name, [s.name for s in mv.inputs], mv.name)


def _timeout_s(parameters: Any) -> float | None:
    """The request's `timeout` parameter (µs) in seconds, as an int64, uint64 or double. It becomes
    a timer on the shared event loop, so only a finite number above 0 is accepted."""
    if "timeout" not in parameters:
        return None
    param = parameters["timeout"]
    kind = param.WhichOneof("parameter_choice")
    if kind not in ("int64_param", "uint64_param", "double_param"):
        raise ValueError(f"parameter timeout must be a number of microseconds, got a {kind}")
    seconds = getattr(param, kind) / 1e6
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            f"parameter timeout must be a finite number of microseconds above 0, got {getattr(param, kind)!r}"
        )
    return seconds


def _handler(service: InferenceService) -> grpc.GenericRpcHandler:
    def wrap(rpc: str) -> Callable:
        method = getattr(service, rpc)

        async def call(request: Any, context: Any) -> Any:
            await service._check(rpc, context)
            return await method(request, context)

        return call

    messages_: dict[str, Any] = messages  # generated protobuf classes: their methods are made at run time
    handlers = {
        rpc: grpc.unary_unary_rpc_method_handler(
            wrap(rpc),
            request_deserializer=messages_[req].FromString,
            response_serializer=messages_[resp].SerializeToString,
        )
        for rpc, (req, resp) in RPCS.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


async def start_grpc(gateway: Gateway, cfg: Config) -> Callable[[], Awaitable[None]]:
    max_msg = cfg.max_frame
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", max_msg), ("grpc.max_send_message_length", max_msg)]
    )
    server.add_generic_rpc_handlers((_handler(InferenceService(gateway)),))
    port = server.add_insecure_port(f"{cfg.http_host}:{cfg.grpc_port}")
    if port == 0:
        raise RuntimeError(
            f"gRPC could not bind {cfg.http_host}:{cfg.grpc_port} (port in use?): set grpc_port "
            "(0 = any free port, null = no gRPC)"
        )
    await server.start()
    print(f"emberflow: grpc on {cfg.http_host}:{port}", flush=True)

    async def close() -> None:
        await server.stop(grace=1)

    return close
