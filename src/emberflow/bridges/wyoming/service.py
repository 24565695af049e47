"""Started by the sys daemon beside the gateways (see emberflow.sys.services) when
`wyoming_port` is set: a TCP server speaking Wyoming, in the daemon's own asyncio loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wyoming.event import Event

    from emberflow.sys.config import Config
    from emberflow.sys.router import Router

log = logging.getLogger("emberflow.wyoming")


class Bridge:
    """What every connection shares: the in-process connection to the router, the warm tasks,
    and the `info` answer (built once)."""

    def __init__(self, router: Router, cfg: Config):
        from emberflow.bridges.wyoming.programs import build_info, installed_models
        from emberflow.bridges.wyoming.tasks import WarmTasks
        from emberflow.gateways.local import LocalConnection
        from emberflow.models.catalogue import Catalogue

        self.router = router
        self.conn = LocalConnection(router, "wyoming")
        self.tasks = WarmTasks(router, self.conn)
        self.models = installed_models(Catalogue(), router.units)
        self.info: Event = build_info(self.models).event()
        self._handlers: set[asyncio.Task[None]] = set()

    def connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from emberflow.bridges.wyoming.handler import WyomingHandler

        task = asyncio.get_running_loop().create_task(WyomingHandler(reader, writer, self).run())
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def warm(self) -> None:
        """Speech recognition and the voice first: the models HA's first voice turn needs."""
        from emberflow.bridges.wyoming.programs import ASR_KINDS, TTS_KINDS

        if (asr := self.models.pick("asr")) is not None:
            await self.tasks.warm(ASR_KINDS, {"model": asr, "response_format": "asr.utf-8"})
        if (voice := self.models.pick("tts")) is not None:
            from emberflow.bridges.wyoming.audio import RATE

            await self.tasks.warm(TTS_KINDS, {"model": voice, "response_format": "tts.pcm.stream",
                                              "audio_rate": RATE})

    async def close(self) -> None:
        for task in list(self._handlers):
            task.cancel()
        await self.tasks.close()
        self.conn.close()


async def start(router: Router, cfg: Config) -> Callable[[], Awaitable[None]] | None:
    if cfg.wyoming_port is None:
        return None
    try:
        import wyoming  # noqa: F401
    except ImportError:
        log.warning("Wyoming server disabled: install the wyoming extra (pip install 'emberflow[wyoming]')")
        return None
    bridge = Bridge(router, cfg)
    server = await asyncio.start_server(bridge.connected, cfg.wyoming_host, cfg.wyoming_port)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"emberflow: wyoming on {host}:{port}", flush=True)
    warming = asyncio.get_running_loop().create_task(bridge.warm())
    advertised = await _advertise(cfg, port) if cfg.wyoming_zeroconf else None

    async def close() -> None:
        warming.cancel()
        server.close()
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
    return zc._aiozc
