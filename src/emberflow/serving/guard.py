"""The ASGI layer every HTTP request crosses first: API key, body size limit, metrics.

Written as plain ASGI (not BaseHTTPMiddleware) so streaming responses pass through untouched
and the per-request cost stays a few microseconds.
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any, Callable

from emberflow.serving.errors import error_body
from emberflow.serving.metrics import Metrics

# Probes must work without credentials (load balancers, kubelets, `curl /health`). The dashboard's
# page and static files hold no data: the page asks for the token and sends it to the API.
PUBLIC_PATHS = {"/health", "/v2/health/live", "/v2/health/ready", "/", "/dashboard/"}
PUBLIC_PREFIXES = ("/dashboard/static/",)


class Guard:
    def __init__(self, app: Callable, *, token: str | None, max_body: int, metrics: Metrics):
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        if self.token is not None and not public and not self._authorized(scope):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "missing or wrong API key"})
                return
            await _send_json(send, 401, error_body(
                path, 401, "Incorrect or missing API key: send the server token as `Authorization: Bearer <token>` "
                           "(the daemon's --token / $EMBERFLOW_TOKEN).",
                code="invalid_api_key"), {"www-authenticate": "Bearer"})
            self.metrics.observe(_protocol(path), "(refused)", 401, 0.0)  # before routing: no route label
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _send_json(send, 413, error_body(path, 413, f"request body is {declared} bytes; "
                                                              f"the limit is {self.max_body} (config max_frame)"))
            self.metrics.observe(_protocol(path), "(refused)", 413, 0.0)
            return
        started = time.perf_counter()
        status = [500]
        received = [0]

        async def counted_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > self.max_body:
                    raise BodyTooLarge()
            return message

        async def tracked_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            status[0] = 413
            await _send_json(send, 413, error_body(path, 413, f"request body exceeds {self.max_body} bytes "
                                                              "(config max_frame)"))
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(_protocol(path), label, status[0], time.perf_counter() - started)

    def _authorized(self, scope: dict) -> bool:
        value = _header(scope, b"authorization") or ""
        scheme, _, key = value.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(key.strip().encode(), self.token or b"")


class BodyTooLarge(Exception):
    pass


def _protocol(path: str) -> str:
    return "kserve" if path.startswith("/v2") else "openai" if path.startswith("/v1") else "http"


def _header(scope: dict, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v.decode("latin-1")
    return None


async def _send_json(send: Callable, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})
