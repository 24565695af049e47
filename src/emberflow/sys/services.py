"""Services the daemon starts beside the StackFlow gateways. Each module owns its imports and
config; `start(router, cfg)` returns an async closer or None."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Awaitable, Callable

if TYPE_CHECKING:
    from emberflow.sys.config import Config
    from emberflow.sys.router import Router

SERVICE_MODULES = ("emberflow.serving.service", "emberflow.flows.service", "emberflow.bridges.wyoming.service")


async def start_services(router: "Router", cfg: "Config") -> list[Callable[[], Awaitable[None]]]:
    closers = []
    for name in SERVICE_MODULES:
        closer = await importlib.import_module(name).start(router, cfg)
        if closer is not None:
            closers.append(closer)
    return closers
