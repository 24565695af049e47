"""The HTTP gateway application: one FastAPI app assembling every protocol's routes.

Gateways translate protocols and units compute; the app reaches units only through the router
(`UnitTasks`), and tensor models through the model repository (`serving.repository`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from emberflow.models.catalogue import Catalogue
from emberflow.serving.errors import error_body, error_response
from emberflow.serving.guard import Guard
from emberflow.serving.metrics import CONTENT_TYPE_LATEST, Metrics
from emberflow.serving.tasks import GatewayError, TextBatcher, UnitTasks

if TYPE_CHECKING:
    from emberflow.sys.config import Config
    from emberflow.sys.router import Router

log = logging.getLogger("emberflow.serving")


class Gateway:
    """What every route shares: the router client, the catalogue, metrics, the model repository."""

    def __init__(self, router: "Router", cfg: "Config"):
        self.router = router
        self.cfg = cfg
        self.started = time.time()
        self.catalogue = Catalogue()
        # Models seen installed: checking the disk costs ~70 µs, too much for every request.
        # Only positives are kept, so a model installed while serving is found at once.
        self._installed: set[str] = set()
        self.metrics = Metrics()
        self._unit_classes: dict[str, Any] = {}
        self._check_instances()
        self.tasks = UnitTasks(router, instances=self.instances_for)
        router.tasks_lost_listeners.append(self._on_tasks_lost)
        self.metrics.add_depth_source(self.tasks.queue_depth)
        self.metrics.add_instances_source(self.tasks.live_instances)
        self.repository: Any = None  # KServe model repository, when configured
        self._embed_batchers: dict[str, TextBatcher] = {}
        self.metrics.add_depth_source(lambda: {m: b.depth() for m, b in self._embed_batchers.items()})

    def require_model(self, name: str, types: tuple[str, ...]) -> dict[str, Any]:
        try:
            desc = self.catalogue.resolve(name).descriptor
        except KeyError:
            desc = None
        if desc is None or desc.get("type") not in types:
            known = [d["mode"] for d in self.catalogue.models.values() if d.get("type") in types]
            raise GatewayError(404, f"The model `{name}` does not exist or cannot serve this endpoint; "
                                    f"available: {', '.join(known) or 'none'} (GET /v1/models)",
                               type="invalid_request_error", code="model_not_found", param="model")
        if desc["mode"] not in self._installed:
            if not self.catalogue.is_installed(desc):
                raise GatewayError(404, f"The model `{name}` is not installed: run `emberflow models install "
                                        f"{desc['mode']}`", type="invalid_request_error", code="model_not_found",
                                   param="model")
            self._installed.add(desc["mode"])
        return desc

    def default_model(self, model_type: str) -> str | None:
        """The installed model of a type, the catalogue's default first."""
        installed = [d for d in self.catalogue.models.values()
                     if d.get("type") == model_type and self.catalogue.is_installed(d)]
        installed.sort(key=lambda d: not d.get("default"))
        return installed[0]["mode"] if installed else None

    def llm_params(self, model: str) -> dict[str, Any]:
        return {"model": model, "response_format": "llm.utf-8.stream", "enoutput": True}

    def embed_params(self, model: str) -> dict[str, Any]:
        return {"model": model, "response_format": "embed.json", "enoutput": True}

    def embed_batcher(self, model: str) -> "TextBatcher":
        """Concurrent /v1/embeddings requests for one model share unit inferences (dynamic batching)."""
        batcher = self._embed_batchers.get(model)
        if batcher is None:
            batcher = self._embed_batchers[model] = TextBatcher(self.tasks, "embed", self.embed_params(model),
                                                                 label=model, metrics=self.metrics)
        return batcher

    def unit_class(self, kind: str) -> Any:
        """A unit kind's class, for its declared schema and limits (it runs in its own process,
        never here); None when the kind is unknown or its module is broken."""
        if kind not in self._unit_classes:
            from emberflow.unit.registry import load_unit_class

            try:
                self._unit_classes[kind] = load_unit_class(kind, self.router.units.get(kind))
            except Exception as e:  # a broken user unit must not take the gateway down
                log.warning("unit %s: %s", kind, e)
                self._unit_classes[kind] = None
        return self._unit_classes[kind]

    def max_tasks(self, kind: str) -> int | None:
        """The unit's own limit on tasks per process (None: the kind cannot be loaded)."""
        cls = self.unit_class(kind)
        return None if cls is None else cls.max_tasks

    def instances_for(self, kind: str) -> int:
        """Tasks per model for a unit kind: the configured `instances`, capped by `max_tasks`."""
        limit = self.max_tasks(kind)
        wanted = self.cfg.instances_for(kind)
        return wanted if limit is None else max(1, min(wanted, limit))

    def _check_instances(self) -> None:
        for kind, wanted in self.cfg.instances.items():
            limit = self.max_tasks(kind)
            if limit is None:
                log.warning("instances: no unit of kind %r (known: %s)", kind, ", ".join(sorted(self.router.units)))
            elif wanted > limit:
                log.warning("instances: %s asks for %d tasks per model, but the %s unit hosts at most %d "
                            "(its max_tasks); using %d", kind, wanted, kind, limit, limit)

    def _on_tasks_lost(self, kind: str) -> None:
        """A unit process died or sys.reset ran: forget its tasks, and load a preloaded model again
        right away, so /health says 503 until it is back and the next request finds it warm."""
        self.tasks.forget(kind)
        if kind in self.cfg.preload:
            self.warm_preloaded(kinds=[kind])

    def warm_preloaded(self, kinds: list[str] | None = None) -> None:
        """`preload` means a warm default model: for each preloaded kind that an OpenAI route serves,
        set up the task that route will use (same params) in the background; /health answers 503
        until it is loaded. Kinds whose unit hosts a single task (tts, whisper) keep only their
        process preloaded, so StackFlow clients and flows can still set that task up."""
        # the params each route really sends (the embeddings batcher may adjust its own)
        routes = {"llm": self.llm_params, "embed": lambda model: self.embed_batcher(model).params}
        for kind in dict.fromkeys(self.cfg.preload if kinds is None else kinds):
            params = routes.get(kind)
            model = self.default_model(kind) if params else None
            if params is None or model is None:
                continue
            self.tasks.warm(kind, params(model))

    def loading(self) -> list[str]:
        """What is still starting: preloaded unit processes, task setups, repository models."""
        waiting = [f"unit {k}" for k in self.cfg.preload
                   if (up := self.router.supervisor.procs.get(k)) is None or not up.ready.is_set()]
        waiting += [f"task {t}" for t in self.tasks.loading()]
        if self.repository is not None:
            waiting += [f"model {m}" for m in self.repository.loading()]
        return waiting

    async def close(self) -> None:
        if self.repository is not None:
            await self.repository.close()
        for b in self._embed_batchers.values():
            await b.close()
        await self.tasks.close()


def create_app(gateway: Gateway) -> Any:
    """The ASGI app: FastAPI routes wrapped in the Guard (API key, body limit, metrics)."""
    from emberflow.serving import kserve_rest, openai_api, openai_audio, unit_rest

    app = FastAPI(title="emberflow", version=_version(),
                  description="OpenAI-compatible, KServe v2 and unit-native APIs over emberflow units.")
    app.state.gateway = gateway

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        return error_response(request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where or 'body'}: {first.get('msg', 'invalid request')}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem(s))"
        return JSONResponse(error_body(request.url.path, 400, message, "invalid_request_error", param=where or None),
                            status_code=400)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(request.url.path, exc.status_code, str(exc.detail)),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.get("/health", tags=["health"])
    async def health() -> JSONResponse:
        waiting = gateway.loading()
        if waiting:
            return JSONResponse({"error": {"code": 503, "message": "Loading: " + ", ".join(waiting),
                                           "type": "unavailable_error"}}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", tags=["health"])
    async def metrics() -> Response:
        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(openai_api.router)
    app.include_router(openai_audio.router)
    app.include_router(kserve_rest.router)
    app.include_router(unit_rest.build_router(gateway))
    return Guard(app, token=gateway.cfg.token, max_body=gateway.cfg.max_frame, metrics=gateway.metrics), app


def _version() -> str:
    from emberflow import __version__

    return __version__
