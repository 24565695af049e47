"""The ASGI layer every HTTP request crosses first: API key, body size limit, metrics.

Written as plain ASGI (not BaseHTTPMiddleware) so streaming responses pass through untouched
and the per-request cost stays a few microseconds.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from emberflow.protocol.framing import has_lone_surrogate
from emberflow.serving.errors import error_body
from emberflow.serving.metrics import Metrics

# Probes must work without credentials (load balancers, kubelets, `curl /health`). The dashboard's
# page and static files hold no data: the page asks for the token and sends it to the API.
PUBLIC_PATHS = {"/health", "/v2/health/live", "/v2/health/ready", "/", "/dashboard/"}
PUBLIC_PREFIXES = ("/dashboard/static/",)


class Guard:
    def __init__(
        self, app: Callable, *, principal_for: Callable[[str], str | None] | None, max_body: int, metrics: Metrics
    ):
        self.app = app
        # None: no token is configured; else the secret -> principal check (constant time)
        self.principal_for = principal_for
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        if self.principal_for is not None and not public and not self._authorized(scope):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "missing or wrong API key"})
                return
            await _send_json(
                send,
                401,
                error_body(
                    path,
                    401,
                    "Incorrect or missing API key: send the server token as `Authorization: Bearer <token>` "
                    "(the daemon's --token / $EMBERFLOW_TOKEN).",
                    code="invalid_api_key",
                ),
                {"www-authenticate": "Bearer"},
            )
            self.metrics.observe(_protocol(path), "(refused)", 401, 0.0)  # before routing: no route label
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _send_json(
                send,
                413,
                error_body(
                    path, 413, f"request body is {declared} bytes; the limit is {self.max_body} (config max_frame)"
                ),
            )
            self.metrics.observe(_protocol(path), "(refused)", 413, 0.0)
            return
        started = time.perf_counter()
        status = [500]
        received = [0]
        refused: list[str] = []  # set once the Guard has answered for the app (body over the limit, ...)
        # FastAPI parses a body as JSON when it says so or says nothing (binary KServe bodies are
        # checked by their route, which knows where the JSON part ends).
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        json_body = (content_type in ("", "application/json") or content_type.endswith("+json")) and _header(
            scope, b"inference-header-content-length"
        ) is None
        chunks: list[bytes] = []  # references to the body's chunks, kept only while it may need the check
        suspect = [False]

        async def refuse(code: int, message: str) -> None:
            """Answer now, before the app has the whole body; what the app sends after is dropped."""
            status[0] = code
            refused.append(message)
            await _send_json(send, code, error_body(path, code, message))

        async def counted_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received[0] += len(body)
                if received[0] > self.max_body:
                    await refuse(413, f"request body exceeds {self.max_body} bytes (config max_frame)")
                    raise BodyRefused()
                if json_body:
                    suspect[0] = suspect[0] or has_lone_surrogate((chunks[-1][-6:] if chunks else b"") + body)
                    chunks.append(body)
                    if not message.get("more_body", False) and suspect[0] and has_lone_surrogate(b"".join(chunks)):
                        await refuse(
                            400,
                            "the JSON body holds a lone UTF-16 surrogate (an unpaired "
                            "\\ud800-\\udfff escape): strings must be Unicode text",
                        )
                        raise BodyRefused()
            return message

        async def tracked_send(message: dict) -> None:
            if refused:
                return
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception:
            if not refused:  # the app's own failure: the server logs it and answers 500
                raise
            # else: the app's reaction to the body it was refused; the client has its answer
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(_protocol(path), label, status[0], time.perf_counter() - started)

    def _authorized(self, scope: dict) -> bool:
        value = _header(scope, b"authorization") or ""
        scheme, _, key = value.partition(" ")
        return (
            scheme.lower() == "bearer"
            and self.principal_for is not None
            and self.principal_for(key.strip()) is not None
        )


LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
ALL_INTERFACES = ("", "0.0.0.0", "::")


class HostGuard:
    """Refuses requests that name another host in `Host` or `Origin`, before anything else runs.

    A page on evil.example can make the browser send requests to 127.0.0.1 (CORS only keeps it
    from reading the answers), and with DNS rebinding it can even read them: its own name then
    resolves to 127.0.0.1, but the browser still sends `Host: evil.example`. Allowed are the
    bound address, localhost (and *.localhost), this machine's host name, names without a dot
    (they resolve from /etc/hosts or the local network; a page's public domain always has one),
    any address when bound to all interfaces, and `allowed_hosts` (`["*"]` turns the check off).
    Clients that are not browsers send no Origin."""

    def __init__(self, app: Callable, *, bound: str, allowed: list[str], metrics: Metrics | None = None):
        self.app = app
        self.metrics = metrics
        self.off = "*" in allowed
        self.names = {_bare(h) for h in (*LOCAL_NAMES, socket.gethostname(), bound, *allowed)}
        self.any_address = bound in ALL_INTERFACES

    def allows(self, name: str | None) -> bool:
        if name is None:
            return False
        name = _bare(name)
        if name in self.names or name.endswith(".localhost") or (self.any_address and _is_address(name)):
            return True
        return "." not in name and ":" not in name and name != ""

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if self.off or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host, origin = _header(scope, b"host"), _header(scope, b"origin")
        problem = None
        if host is not None and not self.allows(_host_name(host)):
            problem = f"Host {host!r} is not a name of this server"
        elif origin is not None and not self.allows(_origin_name(origin)):
            problem = f"requests from web pages of {origin!r} are not accepted"
        if problem is None:
            await self.app(scope, receive, send)
            return
        message = f"{problem}: add the host to allowed_hosts in the daemon's config if it is one"
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": problem[:120]})  # a 403 to the handshake
        else:
            await _send_json(send, 403, error_body(scope["path"], 403, message, code="host_not_allowed"))
        if self.metrics is not None:
            self.metrics.observe(_protocol(scope["path"]), "(refused)", 403, 0.0)


def _bare(name: str) -> str:
    return name.strip().strip("[]").rstrip(".").lower()


def _host_name(host: str) -> str:
    """`Host` without its port: `127.0.0.1:8080` -> `127.0.0.1`, `[::1]:8080` -> `::1`."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _origin_name(origin: str) -> str | None:
    """The host of an `Origin` header; None for `null` (sandboxed pages, files) or a malformed one."""
    try:
        return urlsplit(origin).hostname if origin != "null" else None
    except ValueError:
        return None


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class BodyRefused(Exception):
    """Raised into the app when the Guard has answered for it (it stops reading the body)."""


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
