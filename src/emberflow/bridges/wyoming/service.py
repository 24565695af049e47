"""Started by the sys daemon beside the gateways (see emberflow.sys.services) when
`wyoming_port` is set: a TCP server speaking Wyoming, in the daemon's own asyncio loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emberflow.sys.config import Config
    from emberflow.sys.router import Router

log = logging.getLogger("emberflow.wyoming")


async def start(router: Router, cfg: Config) -> Callable[[], Awaitable[None]] | None:
    if cfg.wyoming_port is None:
        return None
    try:
        import wyoming  # noqa: F401
    except ImportError:
        log.warning("Wyoming server disabled: install the wyoming extra (pip install 'emberflow[wyoming]')")
        return None
    from emberflow.bridges.wyoming.bridge import Bridge
    from emberflow.bridges.wyoming.handler import WyomingHandler

    bridge = Bridge(router)
    handlers: set[asyncio.Task[None]] = set()

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(WyomingHandler(reader, writer, bridge).run())
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    server = await asyncio.start_server(connected, cfg.wyoming_host, cfg.wyoming_port)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"emberflow: wyoming on {host}:{port}", flush=True)
    from emberflow.sys.daemon import _is_loopback

    if not _is_loopback(cfg.wyoming_host):
        log.warning(
            "Wyoming bound to %s: reachable beyond this machine, and Wyoming has no authentication", cfg.wyoming_host
        )
    warming = asyncio.get_running_loop().create_task(bridge.warm())
    advertised = await _advertise(cfg, port) if cfg.wyoming_zeroconf else None

    async def close() -> None:
        warming.cancel()
        server.close()
        for task in list(handlers):
            task.cancel()
        if advertised is not None:
            await advertised.async_close()
        await bridge.close()

    return close


async def _advertise(cfg: Config, port: int) -> Any:
    """mDNS `_wyoming._tcp.local.`, so Home Assistant discovers the server by itself."""
    try:
        from wyoming.zeroconf import HomeAssistantZeroconf
    except ImportError:
        log.warning("wyoming_zeroconf: install zeroconf (pip install 'emberflow[wyoming]')")
        return None
    host = None if cfg.wyoming_host in ("0.0.0.0", "") else cfg.wyoming_host
    zc = HomeAssistantZeroconf(port=port, name="emberflow", host=host)
    await zc.register_server()
    return zc._aiozc  # the package keeps its AsyncZeroconf private and has no close of its own
