"""Supervisor: one OS process per unit kind, started on demand, restarted with backoff.

Readiness-gated: a request for a kind waits until its process has said `ready` (imports done),
or fails with -9 after `unit_ready_timeout`. A process that dies for any reason (SIGKILL
included) is noticed by `proc.wait()` in the event loop, so sys never blocks on a dead unit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from emberflow.protocol.errors import Code, StackFlowError
from emberflow.sys.config import Config

log = logging.getLogger("emberflow.supervisor")


@dataclass
class UnitProcess:
    kind: str
    path: str
    proc: asyncio.subprocess.Process | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    crashes: list[float] = field(default_factory=list)  # monotonic times of recent crashes
    schema: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0
    ready_after: float | None = None  # seconds from spawn to ready
    last_beat: float = 0.0  # monotonic time of its last heartbeat
    hung: bool = False  # missed its heartbeats: killed by the watchdog

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


class Supervisor:
    def __init__(self, cfg: Config, control_addr: str, units: dict[str, str],
                 on_exit: Callable[[str, int, bool], Awaitable[None]]):
        self.cfg = cfg
        self.control_addr = control_addr
        self.units = units  # kind -> "module:Class"
        self.on_exit = on_exit  # (kind, return code, hung)
        self.procs: dict[str, UnitProcess] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self.closing = False  # sys is shutting down: exits are expected, nothing restarts

    def knows(self, kind: str) -> bool:
        return kind in self.units

    def running(self, kind: str) -> UnitProcess | None:
        up = self.procs.get(kind)
        return up if up is not None and up.proc is not None and up.proc.returncode is None else None

    async def ensure(self, kind: str) -> UnitProcess:
        """The ready process for `kind`, starting it if needed."""
        if not self.knows(kind):
            raise StackFlowError(Code.UNIT_CALL, detail=f"no unit of kind {kind!r} is installed")
        up = self.procs.get(kind)
        # proc None: another caller is spawning it right now; wait for that one, don't start a twin
        if up is None or (up.proc is not None and up.proc.returncode is not None and not up.ready.is_set()):
            up = await self._spawn(kind)
        try:
            await asyncio.wait_for(up.ready.wait(), self.cfg.unit_ready_timeout)
        except asyncio.TimeoutError:
            raise StackFlowError(Code.UNIT_CALL, detail=f"unit {kind!r} did not become ready in "
                                                        f"{self.cfg.unit_ready_timeout:.0f} s") from None
        if up.proc is None or up.proc.returncode is not None:
            raise StackFlowError(Code.UNIT_CALL, detail=f"unit {kind!r} exited while starting")
        return up

    def mark_ready(self, kind: str, schema: dict[str, Any]) -> None:
        up = self.procs.get(kind)
        if up is not None:
            up.schema = schema
            up.ready_after = time.monotonic() - up.started_at
            up.last_beat = time.monotonic()
            up.ready.set()
            log.info("unit %s ready (pid %s, %.2f s)", kind, up.pid, up.ready_after)
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch_heartbeats())

    def beat(self, kind: str) -> None:
        up = self.procs.get(kind)
        if up is not None:
            up.last_beat = time.monotonic()

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
                    log.error("unit %s (pid %s) sent no heartbeat for %.1f s: killing it", up.kind, up.pid, silent)
                    up.hung = True
                    up.proc.kill()

    async def _spawn(self, kind: str) -> UnitProcess:
        old = self.procs.get(kind)
        up = UnitProcess(kind, self.units[kind], crashes=old.crashes if old else [])
        self.procs[kind] = up
        cmd = [sys.executable, "-m", "emberflow.unit.host", "--kind", kind, "--control", self.control_addr,
               "--rundir", str(self.cfg.resolved_rundir()), "--unit-path", up.path,
               *(arg for d in self.cfg.model_path_roots() for arg in ("--model-dir", str(d)))]
        up.started_at = time.monotonic()
        try:
            up.proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL)
        except BaseException:
            if self.procs.get(kind) is up:
                del self.procs[kind]  # the next ensure() tries again
            raise
        log.info("started unit %s (pid %s)", kind, up.proc.pid)
        watcher = asyncio.create_task(self._watch(up))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return up

    async def _watch(self, up: UnitProcess) -> None:
        assert up.proc is not None
        rc = await up.proc.wait()
        up.ready.clear()
        if up.stopping or self.closing or self.procs.get(up.kind) is not up:
            return
        why = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
        log.warning("unit %s (pid %s) died: %s", up.kind, up.pid, why)
        self._sweep_ipc(up.kind)
        await self.on_exit(up.kind, rc, up.hung)
        now = time.monotonic()
        up.crashes = [t for t in up.crashes if now - t < 60] + [now]
        first, cap = self.cfg.restart_backoff
        delay = min(cap, first * 2 ** (len(up.crashes) - 1))
        log.info("restarting unit %s in %.1f s (%d crash(es) in the last minute)", up.kind, delay, len(up.crashes))
        await asyncio.sleep(delay)
        if self.procs.get(up.kind) is up and not up.stopping:
            await self._spawn(up.kind)

    async def stop(self, kind: str, timeout: float = 3.0) -> None:
        up = self.procs.pop(kind, None)
        if up is None or up.proc is None:
            return
        up.stopping = True
        if up.proc.returncode is None:
            up.proc.terminate()
            try:
                await asyncio.wait_for(up.proc.wait(), timeout)
            except asyncio.TimeoutError:
                up.proc.kill()
                await up.proc.wait()

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(k) for k in list(self.procs)))

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
        return [{"kind": k, "pid": up.pid, "ready": up.ready.is_set(), "state": self.state(up),
                 "crashes_last_minute": len(up.crashes),
                 "ready_after_s": None if up.ready_after is None else round(up.ready_after, 3)}
                for k, up in self.procs.items()]
