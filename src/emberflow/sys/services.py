"""Services the daemon starts beside the StackFlow gateways. Each module owns its imports and
config; `start(router, cfg)` returns an async closer or None.

The daemon's log is rate-limited here too: a flood of clients (refused connections, bad
requests) must not turn into a flood of log lines that fills the disk.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emberflow.sys.config import Config
    from emberflow.sys.router import Router

SERVICE_MODULES = ("emberflow.serving.service", "emberflow.flows.service", "emberflow.bridges.wyoming.service")


async def start_services(router: Router, cfg: Config) -> list[Callable[[], Awaitable[None]]]:
    limit_log_rate(cfg.log_max_per_minute)
    closers = []
    for name in SERVICE_MODULES:
        closer = await importlib.import_module(name).start(router, cfg)
        if closer is not None:
            closers.append(closer)
    return closers


class LogRateLimit(logging.Filter):
    """At most `per_minute` records per message (logger and format string) in each minute. The
    first record after a minute in which some were dropped says how many."""

    MAX_MESSAGES = 1024  # distinct messages tracked; f-string messages would otherwise grow it forever

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.per_minute = per_minute
        self.clock = clock
        self._windows: dict[tuple[str, str], list[float]] = {}  # message -> [window start, passed, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= 60.0:
            dropped = int(window[2]) if window is not None else 0
            if len(self._windows) >= self.MAX_MESSAGES:
                self._windows.clear()
            self._windows[key] = [now, 1, 0]
            if dropped:
                record.msg = record.getMessage() + f" ({dropped} more like this in the last minute were not logged)"
                record.args = None
            return True
        if window[1] < self.per_minute:
            window[1] += 1
            return True
        window[2] += 1
        return False


def limit_log_rate(per_minute: int, *loggers: str) -> None:
    """Install the limit, once, on every handler of the root logger (where emberflow's and
    asyncio's records end up) and of the named loggers (uvicorn has handlers of its own)."""
    for name in ("", *loggers):
        for handler in logging.getLogger(name or None).handlers:
            if not any(isinstance(f, LogRateLimit) for f in handler.filters):
                handler.addFilter(LogRateLimit(per_minute))
