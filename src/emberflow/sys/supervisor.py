"""Supervisor: one unit host per unit kind, started on demand, restarted with backoff.

Readiness-gated: a request for a kind waits until its host has said `ready` (imports done),
or fails with -9 after `unit_ready_timeout`. A host that dies for any reason (SIGKILL
included) is noticed by `wait()` in the event loop, so sys never blocks on a dead unit.

Where a host runs is its kind's placement (`emberflow.sys.placement`): a local OS process, or a
Ray actor on a cluster node, watched the same way. A kind placed with `replicas: N` has N hosts,
named `kind`, `kind#1`, ... (their control identities); a setup goes to the one with the fewest
tasks, and a host that dies takes only its own tasks with it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from emberflow.protocol.errors import Code, StackFlowError
from emberflow.sys.config import Config
from emberflow.sys.placement import LOCAL, Placement, UnitHandle, parse_placement
from emberflow.sys.placement.local import start_local

log = logging.getLogger("emberflow.supervisor")


@dataclass
class UnitProcess:
    kind: str
    path: str
    host: str = ""  # its control identity: the kind, or `kind#N` for a further replica
    proc: UnitHandle | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    crashes: list[float] = field(default_factory=list)  # monotonic times of recent crashes
    schema: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0
    ready_after: float | None = None  # seconds from spawn to ready
    last_beat: float = 0.0  # monotonic time of its last heartbeat
    hung: bool = False  # missed its heartbeats: killed by the watchdog

    def __post_init__(self) -> None:
        self.host = self.host or self.kind

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


class Supervisor:
    def __init__(
        self,
        cfg: Config,
        control_addr: str,
        units: dict[str, str],
        on_exit: Callable[[str, int, bool], Awaitable[None]],
    ):
        self.cfg = cfg
        self.control_addr = control_addr
        self.units = units  # kind -> "module:Class"
        self.on_exit = on_exit  # (kind, return code, hung)
        self.procs: dict[str, UnitProcess] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self.closing = False  # sys is shutting down: exits are expected, nothing restarts
        self.placements = parse_placement(cfg.placement, cfg.ray_address)
        self.remote_control_addr: str | None = None  # tcp, set by the router when some kind is remote
        self._ray: Any = None  # the Ray backend, connected on first use

    def knows(self, kind: str) -> bool:
        return kind in self.units

    def placement(self, kind: str) -> Placement:
        return self.placements.get(kind, LOCAL)

    def is_remote(self, kind: str) -> bool:
        return self.placement(kind).remote

    @property
    def has_remote(self) -> bool:
        return any(p.remote for p in self.placements.values())

    def hosts_of(self, kind: str) -> list[str]:
        return [kind] + [f"{kind}#{i}" for i in range(1, self.placement(kind).replicas)]

    @staticmethod
    def kind_of(host: str) -> str:
        return host.split("#", 1)[0]

    def running(self, host: str) -> UnitProcess | None:
        up = self.procs.get(host)
        return up if up is not None and up.proc is not None and up.proc.returncode is None else None

    async def ensure(self, host: str) -> UnitProcess:
        """The ready host `host` (a kind, or one replica of it), starting it if needed."""
        kind = self.kind_of(host)
        if not self.knows(kind) or host not in self.hosts_of(kind):
            raise StackFlowError(Code.UNIT_CALL, detail=f"no unit of kind {kind!r} is installed")
        up = self.procs.get(host)
        # proc None: another caller is spawning it right now; wait for that one, don't start a twin
        if up is None or (up.proc is not None and up.proc.returncode is not None and not up.ready.is_set()):
            up = await self._spawn(host)
        try:
            await asyncio.wait_for(up.ready.wait(), self.cfg.unit_ready_timeout)
        except TimeoutError:
            raise StackFlowError(
                Code.UNIT_CALL, detail=f"unit {host!r} did not become ready in {self.cfg.unit_ready_timeout:.0f} s"
            ) from None
        if up.proc is None or up.proc.returncode is not None:
            raise StackFlowError(Code.UNIT_CALL, detail=f"unit {host!r} exited while starting")
        return up

    async def choose(self, kind: str, load: Callable[[str], int]) -> UnitProcess:
        """The host a new task of `kind` goes to: the ready replica with the least `load`. Replicas
        never started are started first, so the first setups spread; one that is restarting is
        skipped while another is ready."""
        hosts = self.hosts_of(kind)
        if len(hosts) == 1:
            return await self.ensure(kind)
        first_time = [h for h in hosts if h not in self.procs]
        if first_time:
            await asyncio.gather(*(self.ensure(h) for h in first_time), return_exceptions=True)
        ready = [up for h in hosts if (up := self.running(h)) is not None and up.ready.is_set()]
        if not ready:
            results = await asyncio.gather(*(self.ensure(h) for h in hosts), return_exceptions=True)
            ready = [r for r in results if isinstance(r, UnitProcess)]
            if not ready:
                error = next(r for r in results if isinstance(r, BaseException))
                raise error
        return min(ready, key=lambda up: (load(up.host), hosts.index(up.host)))

    def mark_ready(self, host: str, schema: dict[str, Any]) -> None:
        up = self.procs.get(host)
        if up is not None:
            up.schema = schema
            up.ready_after = time.monotonic() - up.started_at
            up.last_beat = time.monotonic()
            up.ready.set()
            log.info("unit %s ready (pid %s, %.2f s)", host, up.pid, up.ready_after)
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch_heartbeats())

    def beat(self, host: str) -> None:
        up = self.procs.get(host)
        if up is not None:
            up.last_beat = time.monotonic()

    def connection_lost(self, host: str) -> None:
        """The router saw the control connection of `host` close (a remote host's tcp one): its
        handle ends it now if that is how it learns of its host's death soonest (Ray's report of
        a killed actor comes ~1.4 s later)."""
        up = self.running(host)
        if up is not None and up.proc is not None and up.ready.is_set():
            up.proc.connection_lost()

    async def _watch_heartbeats(self) -> None:
        """A unit process whose main loop stops (SIGSTOP, a deadlock) sends no heartbeat: after
        `unit_heartbeat_timeout` it is killed, which answers everyone waiting on it (-11) and
        restarts it like any crash."""
        timeout = self.cfg.unit_heartbeat_timeout
        while not self.closing:
            await asyncio.sleep(min(1.0, timeout / 4))
            now = time.monotonic()
            for up in list(self.procs.values()):
                silent = now - up.last_beat
                if up.ready.is_set() and not up.hung and silent > timeout and up.proc and up.proc.returncode is None:
                    log.error("unit %s (pid %s) sent no heartbeat for %.1f s: killing it", up.host, up.pid, silent)
                    up.hung = True
                    up.proc.kill()

    async def _spawn(self, host: str) -> UnitProcess:
        kind = self.kind_of(host)
        old = self.procs.get(host)
        up = UnitProcess(kind, self.units[kind], host=host, crashes=old.crashes if old else [])
        self.procs[host] = up
        up.started_at = time.monotonic()
        try:
            up.proc = await self._start(up)
        except BaseException:
            if self.procs.get(host) is up:
                del self.procs[host]  # the next ensure() tries again
            raise
        log.info("started unit %s (pid %s, %s)", host, up.proc.pid, up.proc.where()["backend"])
        watcher = asyncio.create_task(self._watch(up))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return up

    async def _start(self, up: UnitProcess) -> UnitHandle:
        placement = self.placement(up.kind)
        model_dirs = [str(d) for d in self.cfg.model_path_roots()]
        if placement.remote:
            if self._ray is None:
                from emberflow.sys.placement.ray_backend import RayBackend

                self._ray = RayBackend(self.cfg.ray_address or "auto", self.cfg.bus_host, self.cfg.log_level)
            assert self.remote_control_addr is not None, "the router binds the tcp control socket for remote kinds"
            replica = self.hosts_of(up.kind).index(up.host)
            return await self._ray.start(
                up.host, up.kind, up.path, placement, replica, self.remote_control_addr, model_dirs
            )
        args = ["--rundir", str(self.cfg.resolved_rundir()), *(a for d in model_dirs for a in ("--model-dir", d))]
        if self.has_remote:  # remote tasks may read this one's tasks: bind their data sockets on tcp too
            args += ["--remote-bind", f"tcp://{self.cfg.bus_host}"]
        return await start_local(up.kind, up.path, self.control_addr, args)

    async def _watch(self, up: UnitProcess) -> None:
        assert up.proc is not None
        rc = await up.proc.wait()
        up.ready.clear()
        if up.stopping or self.closing or self.procs.get(up.host) is not up:
            return
        why = up.proc.exit_detail() or (f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}")
        log.warning("unit %s (pid %s) died: %s", up.host, up.pid, why)
        self._sweep_ipc(up.host)
        await self.on_exit(up.host, rc, up.hung)
        now = time.monotonic()
        up.crashes = [t for t in up.crashes if now - t < 60] + [now]
        first, cap = self.cfg.restart_backoff
        delay = min(cap, first * 2 ** (len(up.crashes) - 1))
        log.info("restarting unit %s in %.1f s (%d crash(es) in the last minute)", up.host, delay, len(up.crashes))
        await asyncio.sleep(delay)
        if self.procs.get(up.host) is up and not up.stopping:
            await self._spawn(up.host)

    async def stop(self, host: str, timeout: float = 3.0) -> None:
        up = self.procs.pop(host, None)
        if up is None or up.proc is None:
            return
        up.stopping = True
        if up.proc.returncode is None:
            up.proc.terminate()
            try:
                await asyncio.wait_for(up.proc.wait(), timeout)
            except TimeoutError:
                up.proc.kill()
                await up.proc.wait()

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(k) for k in list(self.procs)))

    async def close(self) -> None:
        """Stop every host and leave the Ray cluster (its actors die with their owner anyway)."""
        await self.stop_all()
        if self._ray is not None:
            await self._ray.close()

    def begin_shutdown(self) -> None:
        self.closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()

    def _sweep_ipc(self, kind: str) -> None:
        """A killed process leaves its tasks' ipc socket files behind: remove them."""
        rundir = self.cfg.resolved_rundir()
        for path in [*rundir.glob(f"{kind}.pub"), *rundir.glob(f"{kind}.*.pub")]:
            path.unlink(missing_ok=True)

    def state(self, up: UnitProcess) -> str:
        if up.hung:
            return "hung"
        if up.proc is None or up.proc.returncode is not None:
            return "restarting"
        if not up.ready.is_set():
            return "starting"
        if time.monotonic() - up.last_beat > self.cfg.unit_heartbeat_timeout / 2:
            return "unresponsive"  # late with its heartbeat; killed if it stays silent
        return "ready"

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "kind": up.kind,
                "host": k,
                "pid": up.pid,
                "ready": up.ready.is_set(),
                "state": self.state(up),
                "crashes_last_minute": len(up.crashes),
                "ready_after_s": None if up.ready_after is None else round(up.ready_after, 3),
                "placement": up.proc.where() if up.proc is not None else {"backend": self.placement(up.kind).backend},
            }
            for k, up in self.procs.items()
        ]
