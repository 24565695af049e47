"""The router: takes parsed requests from any gateway connection and routes them.

It owns the global work-id counter, the table of live tasks (who owns each, where its data
socket is) and the set of connections. It does not know what any unit computes: unit actions
go to the unit's process unchanged, and the unit's replies come back through `on_unit_message`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import zmq
import zmq.asyncio

from emberflow.protocol.envelope import RESOURCE_ACTIONS, Request, error_reply, reply
from emberflow.protocol.errors import Code, StackFlowError
from emberflow.sys.config import Config
from emberflow.sys.supervisor import Supervisor

if TYPE_CHECKING:
    from emberflow.gateways.connection import Connection

log = logging.getLogger("emberflow.router")

FIRST_WORK_ID = 1000  # StackFlow's config_work_id
AUDIO = "audio"  # the audio task has no number: StackFlow answers work_id "audio"
# Actions after which a task's output goes to the connection that sent them (StackFlow §2.5).
TOUCHING = {"setup", "link", "unlink", "work", "pause", "exit", "taskinfo", "inference"}


@dataclass
class TaskRecord:
    work_id: str
    kind: str
    owner: int  # connection id that receives the task's asynchronous output
    data_addr: str
    model: str | None
    last_request_id: str
    created: float = field(default_factory=time.time)
    inputs: list[str] = field(default_factory=list)
    plays: bool = False  # response_format sys.pcm: the audio task plays this task's output


@dataclass
class Pending:
    conn: int
    request: Request
    work_id: str | None  # allocated work_id of a setup


class Router:
    def __init__(self, cfg: Config, units: dict[str, str]):
        self.cfg = cfg
        self.units = units
        self.ctx = zmq.asyncio.Context(io_threads=1)
        self.control = self.ctx.socket(zmq.ROUTER)
        self.control.setsockopt(zmq.ROUTER_MANDATORY, 1)  # unroutable = error, not a silent drop
        self.control.setsockopt(zmq.LINGER, 0)
        self.control_addr = f"ipc://{cfg.resolved_rundir()}/control"
        self.control.bind(self.control_addr)
        self.supervisor = Supervisor(cfg, self.control_addr, units, self._on_unit_exit)
        self.conns: dict[int, Connection] = {}
        self.tasks: dict[str, TaskRecord] = {}
        self.pending: dict[str, list[Pending]] = {}  # kind -> unanswered control requests
        self.counter = FIRST_WORK_ID
        self.sys_actions: dict[str, Callable] = {}  # filled by emberflow.sys.actions
        self.started = time.time()
        self._next_tcp_id = 8000  # StackFlow numbers TCP connections from 8000
        self.stats = {"requests": 0, "errors": 0, "outputs": 0, "undeliverable": 0}
        self.stop_event = asyncio.Event()  # set by signals and sys.reboot
        self.reboot_requested = False
        self.uart = None  # the UART gateway, when configured (sys.uartsetup reconfigures it)
        self._internal_conn = None
        # Loaded personalisation resources as their clients sent them: kind -> id -> (data, payload).
        # A unit process that restarts gets them again, so a crash does not lose them.
        self.resources: dict[str, dict[str, tuple[Any, bytes | None]]] = {}
        self._reloading: dict[str, asyncio.Event] = {}  # kind -> set once its resources are back
        # In-process clients (the HTTP gateway) told when every task of a kind is gone: its
        # process died, or sys.reset ran. They may set their warm tasks up again at once.
        self.tasks_lost_listeners: list[Callable[[str], None]] = []

    # --- connections ----------------------------------------------------------------------
    def new_conn_id(self) -> int:
        cid = self._next_tcp_id
        self._next_tcp_id = 8000 if self._next_tcp_id >= 65535 else self._next_tcp_id + 1
        return cid

    def attach(self, conn: Connection) -> None:
        self.conns[conn.conn_id] = conn

    def detach(self, conn: Connection) -> None:
        self.conns.pop(conn.conn_id, None)

    def deliver(self, conn_id: int, msg: dict[str, Any], failed_request: str | None = None) -> None:
        """`failed_request`: for an inference error, the request that failed. StackFlow's error
        names only the unit and the last control request; in-process clients use the hint to
        fail just that request instead of every request waiting on the unit."""
        conn = self.conns.get(conn_id)
        if conn is None:
            self.stats["undeliverable"] += 1  # client went away; counted, not silent
            return
        conn.send(msg, failed_request)

    # --- requests -------------------------------------------------------------------------
    async def handle(self, conn: Connection, req: Request, received: float) -> None:
        self.stats["requests"] += 1
        try:
            if self.cfg.token and not conn.authed and not (req.unit == "sys" and req.action in ("auth", "ping")):
                raise StackFlowError(Code.UNAUTHORIZED)
            if req.action == "inference":
                await self._inference(conn, req, received)
            elif req.unit == "sys":
                handler = self.sys_actions.get(req.action)
                if handler is None:
                    raise StackFlowError(Code.ACTION_MATCH)
                await handler(self, conn, req)
            else:
                await self._unit_action(conn, req)
        except StackFlowError as e:
            self.stats["errors"] += 1
            conn.send(error_reply(req.request_id, req.work_id, e))

    async def _inference(self, conn: Connection, req: Request, received: float) -> None:
        rec = self.tasks.get(req.work_id)
        if rec is None:
            raise StackFlowError(Code.INFERENCE_PUSH)
        rec.owner, rec.last_request_id = conn.conn_id, req.request_id
        await self._send_unit(rec.kind, {"op": "inference", "req": _wire(req), "conn": conn.conn_id,
                                         "hops": [[f"{conn.kind}.recv", received]]}, req.payload)

    async def _unit_action(self, conn: Connection, req: Request) -> None:
        kind = req.unit
        if not self.supervisor.knows(kind):
            raise StackFlowError(Code.UNIT_CALL, detail=f"no unit {kind!r}; installed: {', '.join(sorted(self.units))}")
        msg: dict[str, Any] = {"op": "control", "req": _wire(req), "conn": conn.conn_id}
        work_id = None
        if req.action == "setup":
            implicit = conn is self.internal  # sys setting up the audio unit for a sys.pcm input
            work_id = AUDIO if kind == AUDIO else f"{kind}.{self.counter}"
            if not implicit:
                self.counter += 1  # consumed even if the setup fails (and by audio), as StackFlow does
            if kind == AUDIO:
                if isinstance(req.data, dict):  # configured defaults (source, sink) under the client's keys
                    req.data = {**self.cfg.audio, **req.data}
                    msg["req"] = _wire(req)
                if AUDIO in self.tasks:
                    await self._reconfigure_audio(conn, req)
                    return
            msg.update(op="setup", work_id=work_id, **await self._resolve_inputs(req.data))
        elif req.work_id in self.tasks or req.is_task_id:
            rec = self.tasks.get(req.work_id)
            if rec is None:
                raise StackFlowError(Code.UNIT_NOT_EXIST)
            if req.action in ("link", "unlink"):
                # An unknown target is still forwarded: the unit answers -20, and (as in StackFlow)
                # that request becomes the unit's last control request for later error replies.
                target = self.tasks.get(req.data) if isinstance(req.data, str) else None
                if target is not None:
                    msg["addr"] = target.data_addr
                    msg["policy"] = (req.extra.get("policy") or "lossless")
                    if req.action == "link" and rec.plays and target.kind == "kws":  # the player's new wake word
                        asyncio.get_running_loop().create_task(self._audio_follows(target.work_id))
            if req.action in TOUCHING:
                rec.owner = conn.conn_id
        elif req.action in RESOURCE_ACTIONS and req.work_id == kind:
            pass  # unit-level: the unit's process holds its resources (started if needed)
        elif req.action != "taskinfo":
            raise StackFlowError(Code.UNIT_NOT_EXIST)
        elif self.supervisor.running(kind) is None:
            conn.send(reply(req.request_id, req.work_id, data=[], object=f"{kind}.tasklist"))
            return
        self.pending.setdefault(kind, []).append(Pending(conn.conn_id, req, work_id))
        try:
            reload = conn.conn_id == self._internal_id and req.action == "load_resource"
            await self._send_unit(kind, msg, req.payload, before_resources=reload)
        except StackFlowError:
            self._take_pending(kind, conn.conn_id, req.request_id)
            raise StackFlowError(Code.UNIT_CALL if req.action != "setup" else Code.MODEL_LOADING,
                                 detail=f"unit {kind!r} is not available") from None

    async def _resolve_inputs(self, data: Any) -> dict[str, Any]:
        """Data addresses for the live tasks named in a setup's `input` (StackFlow §8.2).
        `sys.pcm` is the microphone: the audio task, set up on demand with the configured defaults."""
        if not isinstance(data, dict):
            return {"links": {}}
        inputs = data.get("input", [])
        inputs = [inputs] if isinstance(inputs, str) else inputs if isinstance(inputs, list) else []
        links, policies = {}, {}
        wanted = data.get("input_policy") if isinstance(data.get("input_policy"), dict) else {}
        for entry in inputs:
            if not isinstance(entry, str):
                continue
            source = AUDIO if entry.startswith("sys") else entry
            if source == AUDIO and AUDIO not in self.tasks:
                await self._ensure_audio()
            rec = self.tasks.get(source)
            if rec is not None:
                links[source] = rec.data_addr
                policies[source] = wanted.get(entry, "lossless")
        return {"links": links, "policies": policies}

    # --- the audio unit: sys.pcm and the speaker ------------------------------------------
    @property
    def _internal_id(self) -> int | None:
        """sys's own connection id, without creating that connection."""
        return self._internal_conn.conn_id if self._internal_conn is not None else None

    @property
    def internal(self):
        """sys's own client connection, for the requests it makes itself (implicit audio)."""
        if self._internal_conn is None:
            from emberflow.gateways.local import LocalConnection

            self._internal_conn = LocalConnection(self, "sys")
        return self._internal_conn

    async def _ensure_audio(self) -> None:
        reply_ = await self.internal.request(AUDIO, "setup", "audio.setup", dict(self.cfg.audio))
        if reply_["error"]["code"] != 0:
            raise StackFlowError(Code.LINK, detail=f"the audio unit (sys.pcm) failed: {reply_.get('data')}")

    async def _reconfigure_audio(self, conn: Connection, req: Request) -> None:
        """A repeated audio setup: StackFlow acks it (legacy keys are ignored); emberflow keys
        (source, sink, ...) recreate the task at the same address, so subscribers stay linked."""
        from emberflow.units.audio import AudioParams

        ours = set(AudioParams.model_fields) - {"model", "response_format", "enoutput", "input"}
        if isinstance(req.data, dict) and ours & set(req.data):
            await self.internal.request(AUDIO, "exit")
            created = await self.internal.request(AUDIO, "setup", "audio.setup", {**self.cfg.audio, **req.data})
            if created["error"]["code"] != 0:
                conn.send(error_reply(req.request_id, AUDIO, StackFlowError(Code.PARAMETER,
                                                                             detail=str(created.get("data")))))
                return
        conn.send(reply(req.request_id, AUDIO))

    async def _audio_follows(self, *sources: str) -> None:
        """Link the audio unit to these tasks (creating it if needed). It follows a TTS whose
        response_format is `sys.pcm` to play it, and wake words to stop at once on barge-in and
        play their chime, on its own thread rather than after the TTS finishes a clause."""
        try:
            if AUDIO not in self.tasks:
                await self._ensure_audio()
            for source in sources:
                if source in self.tasks:
                    await self.internal.request(AUDIO, "link", "work_id", source)
        except StackFlowError as e:
            log.error("the audio unit cannot follow %s: %s", ", ".join(sources), e)

    async def _send_unit(self, kind: str, msg: dict[str, Any], payload: bytes | None = None,
                         before_resources: bool = False) -> None:
        await self.supervisor.ensure(kind)
        reloading = self._reloading.get(kind)
        if reloading is not None and not before_resources:
            await reloading.wait()  # a restarted unit gets its resources back before other requests
        parts = [json.dumps(msg).encode()]
        if payload is not None:
            parts.append(payload)
        try:
            await self.control.send_multipart([kind.encode(), *parts])
        except zmq.ZMQError as e:  # EHOSTUNREACH: the process died between ensure and send
            raise StackFlowError(Code.UNIT_CALL, detail=str(e)) from None

    def _take_pending(self, kind: str, conn: int, request_id: str) -> Pending | None:
        for i, p in enumerate(self.pending.get(kind, [])):
            if p.conn == conn and p.request.request_id == request_id:
                return self.pending[kind].pop(i)
        return None

    # --- unit side ------------------------------------------------------------------------
    async def serve_units(self) -> None:
        while True:
            ident, *parts = await self.control.recv_multipart()
            try:
                self.on_unit_message(ident.decode(), json.loads(parts[0]))
            except Exception:
                log.exception("bad message from unit %s", ident)

    def on_unit_message(self, kind: str, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "ready":
            self.supervisor.mark_ready(kind, msg.get("schema", {}))
            if self.resources.get(kind):
                gate = self._reloading[kind] = asyncio.Event()
                asyncio.get_running_loop().create_task(self._reload_resources(kind, gate))
        elif op == "send":
            out = msg["msg"]
            pending = self._take_pending(kind, msg["conn"], out.get("request_id", ""))
            if msg.get("created"):
                wid = msg["created"]
                self.tasks[wid] = TaskRecord(wid, kind, msg["conn"], msg.get("data_addr", ""), msg.get("model"),
                                             out.get("request_id", ""))
                data = pending.request.data if pending else None
                if isinstance(data, dict):
                    inputs = data.get("input", [])
                    self.tasks[wid].inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
                    rec = self.tasks[wid]
                    if kind != AUDIO and str(data.get("response_format", "")).startswith("sys"):
                        rec.plays = True
                        wakes = [i for i in rec.inputs if i.startswith("kws")]
                        asyncio.get_running_loop().create_task(self._audio_follows(wid, *wakes))
                    if kind == "kws" and data.get("enwake_audio", True) is not False:
                        asyncio.get_running_loop().create_task(self._audio_follows(wid))  # its chime
            if msg.get("released"):
                self.tasks.pop(msg["released"], None)
            if msg.get("resource_loaded") and pending is not None and pending.conn != self._internal_id:
                self.resources.setdefault(kind, {})[msg["resource_loaded"]] = (pending.request.data,
                                                                               pending.request.payload)
            if msg.get("resource_unloaded"):
                self.resources.get(kind, {}).pop(msg["resource_unloaded"], None)
            self.deliver(msg["conn"], out, msg.get("failed_request"))
        elif op == "output":
            rec = self.tasks.get(msg["work_id"])
            if rec is not None:
                self.stats["outputs"] += 1
                self.deliver(rec.owner, msg["msg"])

    async def _on_unit_exit(self, kind: str, returncode: int) -> None:
        """Tell every client whose task or request died with the process, instead of letting it hang."""
        why = f"killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
        for wid, rec in list(self.tasks.items()):
            if rec.kind != kind:
                continue
            del self.tasks[wid]
            detail = f"unit process {kind!r} {why}; task {wid} is gone, set it up again"
            self.deliver(rec.owner, reply(rec.last_request_id, wid, data={"detail": detail},
                                          code=Code.MODEL_RUN, message="Model run failed."))
        for p in self.pending.pop(kind, []):
            code = Code.MODEL_LOADING if p.request.action == "setup" else Code.UNIT_CALL
            wid = p.request.unit if p.request.action == "setup" else p.request.work_id
            self.deliver(p.conn, error_reply(p.request.request_id, wid,
                                             StackFlowError(code, detail=f"unit process {kind!r} {why}")))
        self._tasks_lost(kind)

    def _tasks_lost(self, *kinds: str) -> None:
        for kind in kinds:
            for listener in self.tasks_lost_listeners:
                try:
                    listener(kind)
                except Exception:  # a listener's bug must not stop the others or the router
                    log.exception("tasks-lost listener failed for %s", kind)

    # --- lifecycle ------------------------------------------------------------------------
    async def reset(self) -> None:
        await self.supervisor.stop_all()
        self.tasks.clear()
        self.pending.clear()
        self.resources.clear()
        self.counter = FIRST_WORK_ID
        for kind in self.cfg.preload:
            asyncio.create_task(self._preload(kind))
        self._tasks_lost(*self.units)

    async def _reload_resources(self, kind: str, gate: asyncio.Event) -> None:
        try:
            for res_id, (data, payload) in list(self.resources.get(kind, {}).items()):
                answer = await self.internal.request(kind, "load_resource", f"{kind}.resource", data,
                                                     payload=payload)
                if answer["error"]["code"] != 0:
                    log.error("reloading resource %s of %s after a restart failed: %s", res_id, kind, answer)
        finally:
            gate.set()
            if self._reloading.get(kind) is gate:
                del self._reloading[kind]

    async def _preload(self, kind: str) -> None:
        try:
            await self.supervisor.ensure(kind)
        except StackFlowError as e:
            log.error("preloading %s failed: %s", kind, e)

    async def close(self) -> None:
        await self.supervisor.stop_all()
        self.control.close(0)
        self.ctx.term()


def _wire(req: Request) -> dict[str, Any]:
    """The request as the unit host rebuilds it (payload travels as a separate binary part)."""
    return {"request_id": req.request_id, "work_id": req.work_id, "action": req.action, "object": req.object,
            "data": req.data, "extra": req.extra}

