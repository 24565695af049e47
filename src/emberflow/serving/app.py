"""The HTTP gateway application: one FastAPI app assembling every protocol's routes.

Gateways translate protocols and units compute; the app reaches units only through the router
(`serving.gateway.Gateway.tasks`), and tensor models through the model repository.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from emberflow.serving.errors import GatewayError, error_body, error_response
from emberflow.serving.gateway import Gateway
from emberflow.serving.guard import Guard
from emberflow.serving.metrics import CONTENT_TYPE_LATEST

log = logging.getLogger("emberflow.serving")


def create_app(gateway: Gateway) -> Any:
    """The ASGI app: FastAPI routes wrapped in the Guard (API key, body limit, metrics)."""
    from emberflow.serving import dashboard, kserve_rest, openai_api, openai_audio, unit_rest

    app = FastAPI(
        title="emberflow",
        version=_version(),
        description="OpenAI-compatible, KServe v2 and unit-native APIs over emberflow units.",
    )
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
        return JSONResponse(
            error_body(request.url.path, 400, message, "invalid_request_error", param=where or None), status_code=400
        )

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(request.url.path, exc.status_code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.get("/health", tags=["health"])
    async def health() -> JSONResponse:
        waiting = gateway.loading()
        if waiting:
            return JSONResponse(
                {"error": {"code": 503, "message": "Loading: " + ", ".join(waiting), "type": "unavailable_error"}},
                status_code=503,
            )
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", tags=["health"])
    async def metrics() -> Response:
        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(openai_api.router)
    app.include_router(openai_audio.router)
    app.include_router(kserve_rest.router)
    app.include_router(unit_rest.build_router(gateway))
    app.include_router(dashboard.build_router(gateway))
    cfg = gateway.cfg
    return Guard(
        app,
        principal_for=cfg.principal_for if cfg.auth_required else None,
        max_body=cfg.max_frame,
        metrics=gateway.metrics,
    ), app


def _version() -> str:
    from emberflow import __version__

    return __version__
