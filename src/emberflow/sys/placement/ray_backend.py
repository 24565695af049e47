"""The Ray backend: each unit host placed on Ray is one actor (`ray_actor.UnitHostActor`).

The sys daemon is the Ray driver and owns the actors, so they die with it.

A host that dies is reported as the supervisor expects of a process: `wait()` returns -9, with
`exit_detail()` saying how it was lost. Its clients are answered by the router as for any crash
(-11), and the heartbeat watchdog covers a node that just goes silent. The death is noticed by
whichever comes first:

- its control connection to sys closes (`connection_lost`, told by the router): at once when
  the actor's worker or its whole node is killed, while Ray reports a lost actor to its owner
  only ~1.4 s later. The actor is then killed for good (it cannot come back beside the next
  one under the same identity) and the next start takes the host's spare: an idle actor placed
  like it, made with each start so that a restart needs no new Ray worker (1-2 s to start on a
  busy small box). A spare costs an idle worker with emberflow imported, and hosts nothing
  until its `serve` is called: never a second host under the same identity (`spare: false` in
  the placement keeps none: a restart then waits for a new worker);
- Ray reports the actor lost (a host that died before it connected, or a node cut off without
  its connections closing). Ray restarts it (`max_restarts`, on any node whose resources fit,
  once one does) and the next start calls `serve` on the same handle again, which Ray holds
  until the actor is back; only an actor Ray gave up on is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from emberflow.sys.placement import Placement

log = logging.getLogger("emberflow.placement.ray")

KILLED = -9  # what a lost actor looks like to the supervisor: as a SIGKILLed process
STOPPED = -15


class RayBackend:
    def __init__(self, address: str, node_ip: str, log_level: str):
        self.address = address
        self.node_ip = node_ip
        self.log_level = log_level
        self.actors: dict[str, Any] = {}  # host -> actor handle, kept across the restarts Ray makes
        # host -> an idle actor placed like it, ready to take over: a new Ray worker takes 1-2 s to
        # start on a busy small box, a restart of the host in a warm one tens of ms.
        self.spares: dict[str, Any] = {}
        self._connected = asyncio.Lock()
        self._joined = False

    async def _join(self) -> None:
        async with self._connected:
            if not self._joined:
                await asyncio.to_thread(self._init)  # seconds: not on the event loop
                self._joined = True

    def _init(self) -> None:
        import ray

        if not ray.is_initialized():
            # _node_ip_address: Ray otherwise advertises this box's routable address, which a
            # cluster bound to loopback (tests, one-box setups) cannot reach.
            ray.init(
                address=self.address,
                _node_ip_address=self.node_ip,
                namespace="emberflow",
                log_to_driver=False,
                configure_logging=False,
            )
            log.info("joined Ray cluster at %s: %s", self.address, ray.cluster_resources())

    async def start(
        self,
        host: str,
        kind: str,
        path: str,
        placement: Placement,
        replica: int,
        control_addr: str,
        model_dirs: list[str],
    ) -> RayUnit:
        await self._join()
        make = lambda: self._new_actor(host, placement, replica)
        if host not in self.actors:
            self.actors[host] = make()
        unit = RayUnit(self, host, make, (host, kind, path, control_addr, model_dirs, self.log_level))
        if placement.spare and host not in self.spares:
            self.spares[host] = self._create(placement, replica)
        return unit

    def _new_actor(self, host: str, placement: Placement, replica: int) -> Any:
        """The host's next actor: its spare when it has one (placed and warm already)."""
        actor = self.spares.pop(host, None) or self._create(placement, replica)
        self.actors[host] = actor
        return actor

    def _create(self, placement: Placement, replica: int) -> Any:
        from emberflow.sys.placement.ray_actor import RemoteUnitHost

        options: dict[str, Any] = {
            "num_cpus": placement.num_cpus,
            "max_restarts": placement.max_restarts,
            "max_task_retries": 0,
            "resources": placement.resources_of(replica),
        }
        if placement.labels:
            options["label_selector"] = dict(placement.labels)
        return RemoteUnitHost.options(**options).remote()  # Ray places it and starts its worker now

    def forget(self, host: str, actor: Any) -> None:
        if self.actors.get(host) is actor:
            del self.actors[host]

    async def close(self) -> None:
        import ray

        for actor in [*self.actors.values(), *self.spares.values()]:
            with contextlib.suppress(Exception):  # already dead
                ray.kill(actor, no_restart=True)
        self.actors.clear()
        self.spares.clear()
        if self._joined:
            await asyncio.to_thread(ray.shutdown)
            self._joined = False


class RayUnit:
    """One run of a unit host in its actor, seen as a `UnitHandle`. Created at once; the actor
    may take a while to be placed (or wait for a node with its resources): the supervisor's
    readiness timeout covers that, and nothing blocks meanwhile."""

    def __init__(self, backend: RayBackend, host: str, make_actor: Any, serve_args: tuple[Any, ...]):
        self.backend = backend
        self.host = host
        self.actor = backend.actors[host]
        self._make_actor = make_actor
        self._serve_args = serve_args
        self._pid: int | None = None
        self._where: dict[str, Any] = {"backend": "ray", "state": "placing"}
        self._returncode: int | None = None
        self._detail: str | None = None
        self._ended = asyncio.Event()
        self._run_task = asyncio.get_running_loop().create_task(self._run())

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def returncode(self) -> int | None:
        return self._returncode

    def where(self) -> dict[str, Any]:
        return dict(self._where)

    def exit_detail(self) -> str | None:
        return self._detail

    async def _run(self) -> None:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        try:
            while True:
                try:
                    info = await self.actor.where.remote()
                    break
                except ActorUnavailableError:
                    await asyncio.sleep(0.1)  # Ray is restarting it (it says so at once): ask again
                except ActorDiedError:  # Ray gave up on it (restarts used up): a new one
                    self.backend.forget(self.host, self.actor)
                    self.actor = self._make_actor()
            self._pid = info["pid"]
            self._where = {"backend": "ray", "state": "running", **info}
            log.info(
                "unit %s placed on Ray node %s (%s, pid %s)",
                self.host,
                info["node_id"][:12],
                info["node_ip"],
                info["pid"],
            )
            rc = await self.actor.serve.remote(*self._serve_args)
            self._end(int(rc), None)
        except RayActorError as e:
            where = self._where.get("node_ip", "?")
            self._end(KILLED, f"lost its Ray actor on node {where} ({type(e).__name__}: {_first_line(e)})")
        except asyncio.CancelledError:
            pass
        except Exception as e:  # e.g. the unit class failed to import on the node
            log.exception("unit %s failed on Ray", self.host)
            self._end(1, f"failed on Ray: {type(e).__name__}: {_first_line(e)}")

    def _end(self, returncode: int, detail: str | None) -> None:
        if self._returncode is None:
            self._returncode, self._detail = returncode, detail
            self._where["state"] = "dead"
            self._ended.set()

    async def wait(self) -> int:
        await self._ended.wait()
        assert self._returncode is not None
        return self._returncode

    def terminate(self) -> None:
        """Stop on purpose: the actor goes for good (a later start makes a new one)."""
        self._drop_actor()
        self._end(STOPPED, None)

    def connection_lost(self) -> None:
        """The host's control connection closed: its worker is gone (or cut off from sys). Ray
        would say so only later; end now, and kill the actor for good so that Ray does not
        restart it beside the new one that the next start makes."""
        self._drop_actor()
        where = self._where.get("node_ip", "?")
        self._end(KILLED, f"lost its Ray actor on node {where} (its control connection to sys closed)")

    def _drop_actor(self) -> None:
        import ray

        self.backend.forget(self.host, self.actor)
        with contextlib.suppress(Exception):
            ray.kill(self.actor, no_restart=True)
        self._run_task.cancel()

    def kill(self) -> None:
        """The watchdog found it hung: Ray may restart the actor (its `max_restarts`)."""
        import ray

        with contextlib.suppress(Exception):
            ray.kill(self.actor, no_restart=False)
        self._run_task.cancel()
        self._end(KILLED, "stopped answering and its Ray actor was killed")


def _first_line(e: BaseException) -> str:
    """An exception's first line without Ray's terminal colours, for a client's error detail."""
    return re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().splitlines()[0][:200] if str(e) else ""
