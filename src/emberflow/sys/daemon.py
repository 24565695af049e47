"""`emberflow up`: the sys daemon with its gateways, in one asyncio loop."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import sys
from typing import TYPE_CHECKING

from emberflow.sys.config import Config

if TYPE_CHECKING:
    from emberflow.sys.router import Router

log = logging.getLogger("emberflow.sys")


def run_daemon(cfg: Config) -> None:
    logging.basicConfig(level=cfg.log_level, format="%(asctime)s sys %(levelname)s %(message)s")
    reboot = asyncio.run(serve(cfg))
    if reboot:
        from emberflow.sys.actions import reexec

        log.info("rebooting emberflow")
        reexec()


async def serve(cfg: Config, started: asyncio.Event | None = None) -> bool:
    """Run until a signal or sys.reboot. Returns True when a reboot was requested."""
    import psutil

    from emberflow.gateways.tcp import start_tcp

    psutil.cpu_percent(interval=None)  # prime, so hwinfo answers at once with a real figure
    router = build_router(cfg)
    unit_server = asyncio.create_task(router.serve_units())
    router.preload_configured()
    if not _is_loopback(cfg.host):
        log.warning(
            "TCP bound to %s: reachable beyond this machine%s",
            cfg.host,
            "" if cfg.token else " and no token is set (--token)",
        )
    server = await start_tcp(router, cfg.host, cfg.port)
    assert isinstance(server, asyncio.Server)
    port = cfg.port = server.sockets[0].getsockname()[1]  # the real one when 0 asked for any
    uart = None
    if cfg.uart:
        from emberflow.gateways.uart import UartGateway

        uart = UartGateway(router, cfg.uart, cfg.baud)
        uart.announce_boot()
    from emberflow.sys.services import start_services

    closers = await start_services(router, cfg)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        router.supervisor.begin_shutdown()  # units get the same signal: don't "restart" them
        router.stop_event.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    # Tests and scripts wait for this exact line to know the port.
    print(f"emberflow: listening on {cfg.host}:{port}", flush=True)
    sys.stdout.flush()
    if started is not None:
        started.set()
    await router.stop_event.wait()
    for close in closers:
        await close()
    server.close()
    if uart is not None:
        uart.close()
    for conn in list(router.conns.values()):
        conn.close()
    unit_server.cancel()
    await router.close()
    if cfg.rundir_is_temporary:
        import shutil

        shutil.rmtree(cfg.rundir, ignore_errors=True)
    return router.reboot_requested


def build_router(cfg: Config) -> Router:
    """The router with its table, sys actions, sys's own connection and the audio policy: the
    one place where these are wired together (none of them imports another)."""
    from emberflow.gateways.local import LocalConnection
    from emberflow.sys.actions import ACTIONS
    from emberflow.sys.audio_policy import AudioPolicy
    from emberflow.sys.router import Router
    from emberflow.sys.tasks import SYSTEM, TaskTable
    from emberflow.unit.registry import known_units

    table = TaskTable()
    router = Router(cfg, known_units(cfg.units), table, sys_actions=ACTIONS)
    router.internal = LocalConnection(router, "sys", principal=SYSTEM)
    policy = AudioPolicy(table, router.internal, cfg.audio)
    table.subscribe(policy.on_event)
    router.resolve_source = policy.resolve_source
    router.setup_defaults = {"audio": cfg.audio}
    return router


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
