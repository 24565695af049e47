"""Started by the sys daemon next to the TCP/UART gateways (see emberflow.sys.services).

uvicorn and grpc.aio run as tasks inside the daemon's own asyncio loop: no extra threads or
processes, and HTTP handlers talk to the router without crossing a thread boundary.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emberflow.sys.config import Config
    from emberflow.sys.router import Router

log = logging.getLogger("emberflow.serving")


async def start(router: Router, cfg: Config) -> Callable[[], Awaitable[None]] | None:
    """Start the HTTP gateway (and gRPC when configured); return an async closer, or None when disabled."""
    if cfg.http_port is None and cfg.grpc_port is None:
        return None
    try:
        import uvicorn
    except ImportError:
        log.warning("HTTP gateway disabled: install the serving extra (pip install 'emberflow[serving]')")
        return None
    from emberflow.serving.app import create_app
    from emberflow.serving.gateway import Gateway

    gateway = Gateway(router, cfg)
    gateway.warm_preloaded()  # before the first probe: /health is 503 until the preloaded models are loaded
    from emberflow.serving.repository import ModelRepository

    gateway.repository = ModelRepository(cfg.model_repository, gateway.metrics)  # empty without a directory
    await gateway.repository.start()
    closers: list[Callable[[], Awaitable[None]]] = []
    if cfg.http_port is not None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        from emberflow.serving.guard import HostGuard
        from emberflow.sys.services import limit_log_rate

        asgi, _ = create_app(gateway)
        asgi = HostGuard(asgi, bound=cfg.http_host, allowed=cfg.allowed_hosts, metrics=gateway.metrics)
        config = uvicorn.Config(
            asgi,
            host=cfg.http_host,
            port=cfg.http_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=math.ceil(cfg.http_idle_timeout),
            http=guarded_http_protocol(AutoHTTPProtocol, cfg),
        )
        limit_log_rate(cfg.log_max_per_minute, "uvicorn", "uvicorn.access")  # uvicorn's own handlers
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]  # the daemon owns SIGINT/SIGTERM
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():  # uvicorn logs the bind error and exits its task
                raise RuntimeError(
                    f"HTTP gateway could not start on {cfg.http_host}:{cfg.http_port} (port in use?): "
                    "set http_port (0 = any free port, null = no HTTP gateway)"
                )
            await asyncio.sleep(0.01)
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        _warn_if_exposed(cfg.http_host, cfg.token, "HTTP")
        print(f"emberflow: http on {host}:{port}", flush=True)

        async def close_http() -> None:
            server.should_exit = True
            try:
                await asyncio.wait_for(task, 5)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()

        closers.append(close_http)
    if cfg.grpc_port is not None:
        try:
            from emberflow.serving.kserve_grpc import start_grpc
        except ImportError:  # grpcio not installed: HTTP only
            log.warning("gRPC gateway disabled: install the serving extra (pip install 'emberflow[serving]')")
        else:
            closers.append(await start_grpc(gateway, cfg))

    async def close() -> None:
        for c in closers:
            await c()
        await gateway.close()

    return close


def guarded_http_protocol(base: type[asyncio.Protocol], cfg: Config) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with what it lacks against idle floods: a cap on open connections
    (more are answered 503 and closed at once, before they hold a file descriptor for long) and a
    timeout for a request's headers, from the connection's start or the first byte of a
    keep-alive request (uvicorn's keep-alive timeout only covers the silence between requests)."""

    class GuardedHTTPProtocol(base):  # type: ignore[valid-type, misc]
        _refused = False
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            if len(self.connections) >= cfg.http_max_connections:
                log.warning("refusing an HTTP connection: %d open (http_max_connections)", len(self.connections))
                self._refused = True
                transport.write(
                    _raw_response(
                        503,
                        "Service Unavailable",
                        f"{len(self.connections)} HTTP connections "
                        "are open, the server's http_max_connections; retry shortly",
                        retry_after=1,
                    )
                )
                transport.close()
                return
            super().connection_made(transport)
            self._await_headers()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._await_headers()  # a keep-alive connection's next request begins
            before = self.cycle
            super().data_received(data)
            if self.cycle is not before:  # its headers are complete
                self._stop_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_header_timer()
            if not self._refused:
                super().connection_lost(exc)

        def _await_headers(self) -> None:
            self._header_timer = self.loop.call_later(cfg.http_header_timeout, self._headers_overdue)

        def _stop_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_overdue(self) -> None:
            self._header_timer = None
            t = self.transport
            if t.is_closing() or t.get_protocol() is not self:  # closed, or now a WebSocket
                return
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a request is being served
            log.warning(
                "closing an HTTP connection that sent no complete request headers within %g s (http_header_timeout)",
                cfg.http_header_timeout,
            )
            t.write(
                _raw_response(
                    408,
                    "Request Timeout",
                    f"no complete request headers within {cfg.http_header_timeout:g} s (http_header_timeout)",
                )
            )
            t.close()

    return GuardedHTTPProtocol


def _raw_response(status: int, reason: str, message: str, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 response written to the transport directly (no request was parsed)."""
    from emberflow.serving.errors import error_body

    body = json.dumps(error_body("/", status, message)).encode()
    extra = f"retry-after: {retry_after}\r\n" if retry_after is not None else ""
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"{extra}connection: close\r\n\r\n"
    ).encode() + body


def _warn_if_exposed(host: str, token: str | None, what: str) -> None:
    from emberflow.sys.daemon import _is_loopback

    if not _is_loopback(host):
        log.warning(
            "%s bound to %s: reachable beyond this machine%s",
            what,
            host,
            "" if token else " and no API key is set (--token)",
        )
