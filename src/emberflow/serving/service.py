"""Started by the sys daemon next to the TCP/UART gateways (see emberflow.sys.services).

uvicorn and grpc.aio run as tasks inside the daemon's own asyncio loop: no extra threads or
processes, and HTTP handlers talk to the router without crossing a thread boundary.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Awaitable, Callable

if TYPE_CHECKING:
    from emberflow.sys.config import Config
    from emberflow.sys.router import Router

log = logging.getLogger("emberflow.serving")


async def start(router: "Router", cfg: "Config") -> Callable[[], Awaitable[None]] | None:
    """Start the HTTP gateway (and gRPC when configured); return an async closer, or None when disabled."""
    if cfg.http_port is None and cfg.grpc_port is None:
        return None
    try:
        import uvicorn
    except ImportError:
        log.warning("HTTP gateway disabled: install the serving extra (pip install 'emberflow[serving]')")
        return None
    from emberflow.serving.app import Gateway, create_app

    gateway = Gateway(router, cfg)
    gateway.warm_preloaded()  # before the first probe: /health is 503 until the preloaded models are loaded
    from emberflow.serving.repository import ModelRepository

    gateway.repository = ModelRepository(cfg.model_repository, gateway.metrics)  # empty without a directory
    await gateway.repository.start()
    closers: list[Callable[[], Awaitable[None]]] = []
    if cfg.http_port is not None:
        from emberflow.serving.guard import HostGuard

        asgi, _ = create_app(gateway)
        asgi = HostGuard(asgi, bound=cfg.http_host, allowed=cfg.allowed_hosts, metrics=gateway.metrics)
        config = uvicorn.Config(asgi, host=cfg.http_host, port=cfg.http_port, log_level="warning",
                                access_log=False, lifespan="off", timeout_keep_alive=30)
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # the daemon owns SIGINT/SIGTERM
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():  # uvicorn logs the bind error and exits its task
                raise RuntimeError(f"HTTP gateway could not start on {cfg.http_host}:{cfg.http_port} (port in use?): "
                                   "set http_port (0 = any free port, null = no HTTP gateway)")
            await asyncio.sleep(0.01)
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        _warn_if_exposed(cfg.http_host, cfg.token, "HTTP")
        print(f"emberflow: http on {host}:{port}", flush=True)

        async def close_http() -> None:
            server.should_exit = True
            try:
                await asyncio.wait_for(task, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                task.cancel()

        closers.append(close_http)
    if cfg.grpc_port is not None:
        try:
            from emberflow.serving.kserve_grpc import start_grpc
        except ImportError:
            start_grpc = None
        if start_grpc is not None:
            closers.append(await start_grpc(gateway, cfg))

    async def close() -> None:
        for c in closers:
            await c()
        await gateway.close()

    return close


def _warn_if_exposed(host: str, token: str | None, what: str) -> None:
    from emberflow.sys.daemon import _is_loopback

    if not _is_loopback(host):
        log.warning("%s bound to %s: reachable beyond this machine%s", what, host,
                    "" if token else " and no API key is set (--token)")
