"""Started by the sys daemon next to the TCP/UART gateways (see emberflow.sys.services)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable

if TYPE_CHECKING:
    from emberflow.sys.config import Config
    from emberflow.sys.router import Router


async def start(router: "Router", cfg: "Config") -> Callable[[], Awaitable[None]] | None:
    """Start the HTTP gateway; return an async closer, or None when disabled."""
    return None
