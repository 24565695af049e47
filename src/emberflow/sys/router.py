"""The router: takes parsed requests from any gateway connection and routes them.

It writes the task table (`sys.tasks`: work ids, owners, who waits on what) and talks to unit
processes with the typed messages of `bus.control`. It knows nothing of what any unit computes,
nor of any policy about particular units: the audio routing and wake handling live in
`sys.audio_policy`, which subscribes to the table's lifecycle events. Connections are given to it
(`gateways.base.ClientConnection`); it imports none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from emberflow.bus import control
from emberflow.bus.control import NO_CONN
from emberflow.gateways.base import ClientConnection, Delivery
from emberflow.protocol.envelope import RESOURCE_ACTIONS, Request, error_reply, reply
from emberflow.protocol.errors import Code, Reason, StackFlowError
from emberflow.sys.config import Config
from emberflow.sys.supervisor import Supervisor
from emberflow.sys.tasks import SHARED, SYSTEM, LossReason, Pending, TaskRecord, TaskTable
from emberflow.unit.inputs import is_stream_message

log = logging.getLogger("emberflow.router")

SysAction = Callable[["Router", ClientConnection, Request], Awaitable[None]]


async def _same_source(entry: str) -> str:
    return entry


class Router:
    def __init__(
        self,
        cfg: Config,
        units: dict[str, str],
        table: TaskTable | None = None,
        sys_actions: dict[str, SysAction] | None = None,
    ):
        self.cfg = cfg
        self.units = units
        self.tasks = table if table is not None else TaskTable()
        self.ctx = zmq.asyncio.Context(io_threads=1)
        self.control = self.ctx.socket(zmq.ROUTER)
        self.control.setsockopt(zmq.ROUTER_MANDATORY, 1)  # unroutable = error, not a silent drop
        # A restarted host takes its identity over at once, even while the connection of the old
        # one (on a machine that vanished) still looks open.
        self.control.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.control.setsockopt(zmq.LINGER, 0)
        self._monitor: zmq.asyncio.Socket | None = None
        self.control_addr = f"ipc://{cfg.resolved_rundir()}/control"
        self.control.bind(self.control_addr)
        self.supervisor = Supervisor(cfg, self.control_addr, units, self._on_unit_exit)
        if self.supervisor.has_remote:  # hosts on other machines reach the same socket over tcp
            self.control.bind(f"tcp://{cfg.bus_host}:{cfg.bus_port or '*'}")
            self.supervisor.remote_control_addr = self.control.getsockopt_string(zmq.LAST_ENDPOINT)
            # A remote host's connection closes the moment its process dies, well before Ray tells
            # its owner that the actor is gone: each closed connection is told to the supervisor.
            self._monitor = self.control.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            if cfg.bus_host not in ("127.0.0.1", "::1", "localhost"):
                log.warning(
                    "unit control socket on %s: it has no authentication; keep the cluster on a trusted network",
                    self.supervisor.remote_control_addr,
                )
        self.conns: dict[int, ClientConnection] = {}
        self._remote_fds: dict[int, str] = {}  # socket fd of a remote host's control connection -> host
        self.sys_actions: dict[str, SysAction] = dict(sys_actions or {})
        self.started = time.time()
        self._next_tcp_id = 8000  # StackFlow numbers TCP connections from 8000
        self.stats = {"requests": 0, "errors": 0, "outputs": 0, "undeliverable": 0}
        self.stop_event = asyncio.Event()  # set by signals and sys.reboot
        self.reboot_requested = False
        self.uart: Any = None  # the UART gateway, when configured (sys.uartsetup reconfigures it)
        # sys's own client connection (resource reloads, policies), given by the daemon.
        self.internal: Any = None
        # What a setup's `input` entry names: a work id, or an alias a policy resolves (sys.pcm).
        self.resolve_source: Callable[[str], Awaitable[str]] = _same_source
        # Setup data a kind gets under the client's keys (the configured audio source and sink).
        self.setup_defaults: dict[str, dict[str, Any]] = {}
        # Loaded personalisation resources as their clients sent them: kind -> id -> (data, payload).
        # A unit process that restarts gets them again, so a crash does not lose them.
        self.resources: dict[str, dict[str, tuple[Any, bytes | None]]] = {}
        self._reloading: dict[str, asyncio.Event] = {}  # kind -> set once its resources are back
        self._background: set[asyncio.Task[None]] = set()  # fire-and-forget work, held until done
        self._on: dict[type[control.Message], Callable[[str, Any], None]] = {
            control.Ready: self._on_ready,
            control.Heartbeat: self._on_heartbeat,
            control.Answer: self._on_answer,
            control.TaskCreated: self._on_created,
            control.SetupFailed: self._on_answer,
            control.TaskReleased: self._on_released,
            control.Linked: self._on_linked,
            control.ResourceChanged: self._on_resource,
            control.Output: self._on_output,
            control.Failed: self._on_failed,
            control.Done: self._on_done,
        }

    # --- connections -------------------------------------------------------------------------------
    def new_conn_id(self) -> int:
        cid = self._next_tcp_id
        self._next_tcp_id = 8000 if self._next_tcp_id >= 65535 else self._next_tcp_id + 1
        return cid

    def attach(self, conn: ClientConnection) -> None:
        self.conns[conn.conn_id] = conn

    def detach(self, conn: ClientConnection) -> None:
        """A client left: the requests it still waited for are cancelled (nobody reads them)."""
        self.conns.pop(conn.conn_id, None)
        for rec in self.tasks:
            for cid, rid in [key for key in rec.waiting if key[0] == conn.conn_id]:
                self._cancel(rec, cid, rid)

    def deliver(self, conn_id: int, msg: dict[str, Any], delivery: Delivery | None = None) -> None:
        conn = self.conns.get(conn_id)
        if conn is None:
            self.stats["undeliverable"] += 1  # client went away; counted, not silent
            return
        conn.send(msg, delivery)

    # --- requests ----------------------------------------------------------------------------------
    async def handle(self, conn: ClientConnection, req: Request, received: float) -> None:
        self.stats["requests"] += 1
        try:
            if (
                self.cfg.auth_required
                and not conn.authed
                and not (req.unit == "sys" and req.action in ("auth", "ping"))
            ):
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
            conn.send(error_reply(req.request_id, req.work_id, e), Delivery(req.request_id, e.reason))

    def _drive(self, rec: TaskRecord, conn: ClientConnection, req: Request) -> None:
        """Check that `conn` may do this to the task; driving it makes `conn` its owner."""
        self.tasks.check_driver(rec, conn.principal, req.action)
        if req.action != "taskinfo":
            rec.owner = conn.conn_id

    async def _inference(self, conn: ClientConnection, req: Request, received: float) -> None:
        rec = self.tasks.get(req.work_id)
        if rec is None:
            raise StackFlowError(Code.INFERENCE_PUSH, reason=Reason.TASK_LOST)
        self._drive(rec, conn, req)
        rec.last_request_id = req.request_id
        key = (conn.conn_id, req.request_id)
        # A request opens with its first message (a whole one, or chunk 0 of a stream) and closes
        # with the unit's Done; the chunks between belong to it.
        opens = not is_stream_message(req.object, req.data) or req.data.get("index") == 0
        if opens or key not in rec.waiting:
            self.tasks.request_opened(rec, key)
        try:
            await self._send_unit(rec.host, control.Inference(req, conn.conn_id, [(f"{conn.kind}.recv", received)]))
        except StackFlowError:
            self.tasks.request_closed(rec, key)
            raise

    def cancel(self, conn: ClientConnection, work_id: str, request_id: str) -> None:
        rec = self.tasks.get(work_id)
        if rec is not None and (conn.conn_id, request_id) in rec.waiting:
            self._cancel(rec, conn.conn_id, request_id)

    def _cancel(self, rec: TaskRecord, conn_id: int, request_id: str) -> None:
        rec.waiting.pop((conn_id, request_id), None)
        up = self.supervisor.running(rec.host)
        if up is not None and up.ready.is_set():
            self.spawn(self._send_quietly(rec.host, control.Cancel(rec.work_id, conn_id, request_id)))

    async def _send_quietly(self, host: str, msg: control.Message) -> None:
        try:
            await self._send_unit(host, msg)
        except StackFlowError:
            pass  # the process is gone: so is the work to cancel

    async def _unit_action(self, conn: ClientConnection, req: Request) -> None:
        kind = req.unit
        if not self.supervisor.knows(kind):
            raise StackFlowError(Code.UNIT_CALL, detail=f"no unit {kind!r}; installed: {', '.join(sorted(self.units))}")
        msg: control.Message
        if req.action == "setup":
            await self._setup(conn, req)
            return
        host = kind  # unit-level actions go to its first host
        if req.work_id in self.tasks or req.is_task_id:
            rec = self.tasks.get(req.work_id)
            if rec is None:
                raise StackFlowError(Code.UNIT_NOT_EXIST)
            self._drive(rec, conn, req)
            msg = self._task_action(rec, conn, req)
            host = rec.host
        elif req.work_id == kind and (req.action in RESOURCE_ACTIONS or await self._is_unit_action(kind, req.action)):
            if req.action in RESOURCE_ACTIONS and len(self.supervisor.hosts_of(kind)) > 1:
                raise StackFlowError(
                    Code.UNIT_CALL,
                    detail=f"{kind} runs as several replicas; resources are "
                    "loaded per host, which replicas do not support yet",
                )
            msg = control.Action(req, conn.conn_id)  # unit-level: the unit's process answers (resources too)
        elif req.action != "taskinfo":
            raise StackFlowError(Code.UNIT_NOT_EXIST)
        elif self.supervisor.running(kind) is None:
            conn.send(reply(req.request_id, req.work_id, data=[], object=f"{kind}.tasklist"))
            return
        else:
            msg = control.Action(req, conn.conn_id)
        pending = Pending(conn.conn_id, conn.principal, req, None, host)
        self.tasks.add_pending(kind, pending)
        try:
            reload = conn.principal == SYSTEM and req.action == "load_resource"
            await self._send_unit(host, msg, before_resources=reload)
        except StackFlowError:
            self.tasks.take_pending(kind, conn.conn_id, req.request_id)
            raise StackFlowError(Code.UNIT_CALL, detail=f"unit {kind!r} is not available") from None

    async def _is_unit_action(self, kind: str, action: str) -> bool:
        """An action the unit declares on itself (`@action(name, unit_level=True)`), by its schema."""
        if action in ("setup", "taskinfo"):
            return False
        try:
            up = await self.supervisor.ensure(kind)
        except StackFlowError:
            return False
        return action in up.schema.get("unit_actions", ())

    def _task_action(self, rec: TaskRecord, conn: ClientConnection, req: Request) -> control.Action:
        if req.action not in ("link", "unlink"):
            return control.Action(req, conn.conn_id)
        # An unknown target is still forwarded: the unit answers -20, and (as in StackFlow) that
        # request becomes the unit's last control request for later error replies.
        target = self.tasks.get(req.data) if isinstance(req.data, str) else None
        if target is None:
            return control.Action(req, conn.conn_id)
        if req.action == "link":
            cycle = self.tasks.would_cycle(rec.work_id, target.work_id)
            if cycle is not None:
                raise StackFlowError(Code.LINK, detail="linking would make a cycle: " + " <- ".join(cycle))
        return control.Action(
            req,
            conn.conn_id,
            self._data_addr_for(rec.kind, target),
            req.extra.get("policy") or target.output_policy,
            target.system_frames,
        )

    def _data_addr_for(self, reader_kind: str, source: TaskRecord) -> str:
        """The address a task of `reader_kind` reads `source` at: tcp when the reader may be on
        another machine and the source also listens there, else the source's own (ipc locally)."""
        if self.supervisor.is_remote(reader_kind) and source.remote_addr:
            return source.remote_addr
        return source.data_addr

    async def _setup(self, conn: ClientConnection, req: Request) -> None:
        kind = req.unit
        pending = Pending(conn.conn_id, conn.principal, req, None)
        self.tasks.add_pending(kind, pending)  # from now on, the setup is under way (health: loading)
        try:
            up = await self.supervisor.choose(kind, lambda host: self._load_of(kind, host))
            pending.host = up.host
            if up.schema.get("singleton"):
                # A singleton's work id is its kind (StackFlow answers `audio`), yet a client's
                # setup consumes a number all the same, as StackFlow counts; sys's own does not.
                pending.work_id = kind
                if conn.principal != SYSTEM:
                    self.tasks.counter += 1
            else:
                pending.work_id = self.tasks.next_work_id(kind)  # consumed even if the setup fails
            links, policies, system = await self._resolve_inputs(kind, req.data)
            defaults = self.setup_defaults.get(kind, {})
            await self._send_unit(
                up.host, control.Setup(req, conn.conn_id, pending.work_id, links, policies, system, defaults)
            )
        except StackFlowError as e:
            self.tasks.take_pending(kind, conn.conn_id, req.request_id)
            if e.code == Code.LINK:
                raise
            raise StackFlowError(Code.MODEL_LOADING, detail=f"unit {kind!r} is not available") from None

    def _load_of(self, kind: str, host: str) -> int:
        """Tasks on a unit host, and setups on their way to it (the balance between replicas)."""
        return sum(1 for r in self.tasks.of_kind(kind) if r.host == host) + sum(
            1 for p in self.tasks.pending.get(kind, []) if p.host == host and p.request.action == "setup"
        )

    async def _resolve_inputs(self, kind: str, data: Any) -> tuple[dict[str, str], dict[str, str], list[str]]:
        """Data addresses and queue policies of the live tasks a setup's `input` names (StackFlow
        §8.2), and which of them send system frames; `input_policy` may key a policy by the entry
        as written (`sys.pcm`)."""
        if not isinstance(data, dict):
            return {}, {}, []
        inputs = data.get("input", [])
        inputs = [inputs] if isinstance(inputs, str) else inputs if isinstance(inputs, list) else []
        wanted: dict[str, Any] = data["input_policy"] if isinstance(data.get("input_policy"), dict) else {}
        links, policies, system = {}, {}, []
        for entry in inputs:
            if not isinstance(entry, str):
                continue
            rec = self.tasks.get(await self.resolve_source(entry))
            if rec is not None:
                links[rec.work_id] = self._data_addr_for(kind, rec)
                policies[rec.work_id] = wanted.get(entry, rec.output_policy)
                if rec.system_frames:
                    system.append(rec.work_id)
        return links, policies, system

    async def _send_unit(self, host: str, msg: control.Message, before_resources: bool = False) -> None:
        await self.supervisor.ensure(host)
        reloading = self._reloading.get(host)
        if reloading is not None and not before_resources:
            await reloading.wait()  # a restarted unit gets its resources back before other requests
        try:
            await self.control.send_multipart([host.encode(), *control.encode(msg)])
        except zmq.ZMQError as e:  # EHOSTUNREACH: the process died between ensure and send
            raise StackFlowError(Code.UNIT_CALL, detail=str(e)) from None

    # --- unit side: handlers get the sending host's identity (its kind, or `kind#N` of a replica) ---
    async def serve_units(self) -> None:
        if self._monitor is not None:
            self.spawn(self._watch_connections(self._monitor))
        while True:
            fd = None
            if self._monitor is None:
                ident, *parts = await self.control.recv_multipart()
            else:  # the frames say which connection (socket fd) they came by
                frames = await self.control.recv_multipart(copy=False)
                ident, parts, fd = frames[0].bytes, [f.bytes for f in frames[1:]], frames[0].get(zmq.SRCFD)
            try:
                msg = control.decode(parts)
                if fd is not None and type(msg) is control.Ready:
                    self._connected(ident.decode(), fd)
                self._on[type(msg)](ident.decode(), msg)
            except Exception:
                log.exception("bad message from unit %s", ident)

    # --- control connections of remote hosts: a closed one is a host gone -----------------------------
    def _connected(self, host: str, fd: int) -> None:
        """A host said `ready` by the connection with this socket fd. The closes the monitor has
        already reported are handled first: one of an earlier connection that had the same fd
        number is not this host's."""
        assert self._monitor is not None
        pending: zmq.Socket[bytes] = zmq.Socket.shadow(self._monitor.underlying)  # read without waiting
        while True:
            try:
                self._on_connection_event(pending.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                break
        self._remote_fds = {f: h for f, h in self._remote_fds.items() if h != host}
        if self.supervisor.is_remote(self.supervisor.kind_of(host)):
            self._remote_fds[fd] = host

    async def _watch_connections(self, monitor: zmq.asyncio.Socket) -> None:
        while True:
            self._on_connection_event(await monitor.recv_multipart())

    def _on_connection_event(self, event: list[bytes]) -> None:
        fd = parse_monitor_message(event)["value"]  # EVENT_DISCONNECTED: the fd of the closed connection
        host = self._remote_fds.pop(fd, None)
        if host is not None:
            log.info("unit %s: its control connection closed", host)
            self.supervisor.connection_lost(host)

    def _on_ready(self, kind: str, msg: control.Ready) -> None:
        self.supervisor.mark_ready(kind, msg.schema)
        if self.resources.get(kind):  # (never for a replica: replicated kinds take no resources)
            gate = self._reloading[kind] = asyncio.Event()
            self.spawn(self._reload_resources(kind, gate))

    def _on_heartbeat(self, kind: str, msg: control.Heartbeat) -> None:
        self.supervisor.beat(kind)

    def _reply(self, kind: str, conn: int, reply_: dict[str, Any], reason: Reason | None = None) -> Pending | None:
        """Deliver the answer to a control request; returns the request it answered."""
        rid = reply_.get("request_id", "")
        pending = self.tasks.take_pending(self.supervisor.kind_of(kind), conn, rid)
        self.deliver(conn, reply_, Delivery(rid, reason))
        return pending

    def _on_answer(self, kind: str, msg: control.Answer | control.SetupFailed) -> None:
        self._reply(kind, msg.conn, msg.reply, getattr(msg, "reason", None))

    def _on_created(self, host: str, msg: control.TaskCreated) -> None:
        kind = self.supervisor.kind_of(host)
        pending = self.tasks.take_pending(kind, msg.conn, msg.reply.get("request_id", ""))
        data = pending.request.data if pending is not None and isinstance(pending.request.data, dict) else {}
        inputs = data.get("input", [])
        up = self.supervisor.procs.get(host)
        schema = up.schema if up is not None else {}
        principal = pending.principal if pending is not None else SYSTEM
        rec = TaskRecord(
            msg.work_id,
            kind,
            principal=SHARED if schema.get("singleton") else principal,
            owner=msg.conn,
            data_addr=msg.data_addr,
            model=msg.model,
            params=data,
            inputs=[inputs] if isinstance(inputs, str) else list(inputs or []),
            last_request_id=msg.reply.get("request_id", ""),
            system_frames=bool(schema.get("system_frames")),
            host=host,
            remote_addr=msg.remote_addr,
            output_policy=str(schema.get("output_policy", "lossless")),
        )
        self.tasks.add(rec)
        self.deliver(msg.conn, msg.reply, Delivery(msg.reply.get("request_id")))

    def _on_released(self, kind: str, msg: control.TaskReleased) -> None:
        rec = self.tasks.end(msg.work_id)
        if rec is not None:
            self._finish_waiting(rec)
        self._reply(kind, msg.conn, msg.reply)

    def _on_linked(self, kind: str, msg: control.Linked) -> None:
        self.tasks.relink(msg.work_id, msg.source, msg.linked)
        self._reply(kind, msg.conn, msg.reply)

    def _on_resource(self, kind: str, msg: control.ResourceChanged) -> None:
        pending = self._reply(kind, msg.conn, msg.reply)
        if not msg.loaded:
            self.resources.get(kind, {}).pop(msg.res_id, None)
        elif pending is not None and pending.principal != SYSTEM:  # not a reload of our own
            self.resources.setdefault(kind, {})[msg.res_id] = (pending.request.data, pending.request.payload)

    def _on_output(self, kind: str, msg: control.Output) -> None:
        rec = self.tasks.get(msg.work_id)
        if rec is None:
            self.stats["undeliverable"] += 1
            return
        self.stats["outputs"] += 1
        out = reply(msg.request_id, msg.work_id, data=msg.client_data(), object=msg.object)
        if msg.conn == NO_CONN:
            self.deliver(rec.owner, out)
        elif (msg.conn, msg.request_id) in rec.waiting:
            self.deliver(msg.conn, out, Delivery(msg.request_id))
        else:
            self.stats["undeliverable"] += 1  # its client cancelled it or left

    def _on_failed(self, kind: str, msg: control.Failed) -> None:
        rec = self.tasks.get(msg.work_id)
        conn = msg.conn if msg.conn != NO_CONN else (rec.owner if rec is not None else NO_CONN)
        self.deliver(conn, msg.reply, Delivery(msg.request_id, msg.reason))

    def _on_done(self, kind: str, msg: control.Done) -> None:
        rec = self.tasks.get(msg.work_id)
        if rec is not None:
            self.tasks.request_closed(rec, (msg.conn, msg.request_id))
        conn = self.conns.get(msg.conn)
        if conn is not None:
            conn.request_done(msg.request_id)

    def _finish_waiting(self, rec: TaskRecord) -> None:
        """The task exited: requests still waiting on it get no more output."""
        for cid, rid in list(rec.waiting):
            conn = self.conns.get(cid)
            if conn is not None:
                conn.request_done(rid)
        rec.waiting.clear()

    async def _on_unit_exit(self, host: str, returncode: int, hung: bool) -> None:
        """Tell every client whose task or request died with the process, at once, instead of
        letting it hang: each waiting request gets -11, and so does each task's owner."""
        kind = self.supervisor.kind_of(host)
        up = self.supervisor.procs.get(host)
        detail = up.proc.exit_detail() if up is not None and up.proc is not None else None
        why = detail or (f"killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}")
        if hung:
            why = f"stopped answering (no heartbeat for {self.cfg.unit_heartbeat_timeout:.0f} s) and was killed"
        for rec in self.tasks.lose_kind(kind, LossReason.HUNG if hung else LossReason.CRASHED, why, host=host):
            detail = f"unit process {kind!r} {why}; task {rec.work_id} is gone, set it up again"
            told = set()
            for cid, rid in list(rec.waiting):  # in the order they were sent
                self.deliver(
                    cid,
                    reply(rid, rec.work_id, data={"detail": detail}, code=Code.MODEL_RUN, message="Model run failed."),
                    Delivery(rid, Reason.TASK_LOST),
                )
                told.add(cid)
                if (conn := self.conns.get(cid)) is not None:
                    conn.request_done(rid)
            if rec.owner not in told:
                self.deliver(
                    rec.owner,
                    reply(
                        rec.last_request_id,
                        rec.work_id,
                        data={"detail": detail},
                        code=Code.MODEL_RUN,
                        message="Model run failed.",
                    ),
                    Delivery(rec.last_request_id, Reason.TASK_LOST),
                )
        pending = self.tasks.pending.pop(kind, [])
        if host != kind or len(self.supervisor.hosts_of(kind)) > 1:  # the other replicas' requests stay
            self.tasks.pending[kind] = [p for p in pending if p.host not in ("", host)]
            pending = [p for p in pending if p.host in ("", host)]
        for p in pending:
            code = Code.MODEL_LOADING if p.request.action == "setup" else Code.UNIT_CALL
            wid = p.request.unit if p.request.action == "setup" else p.request.work_id
            err = StackFlowError(code, detail=f"unit process {kind!r} {why}", reason=Reason.TASK_LOST)
            self.deliver(
                p.conn, error_reply(p.request.request_id, wid, err), Delivery(p.request.request_id, err.reason)
            )

    # --- lifecycle ---------------------------------------------------------------------------------
    async def reset(self) -> None:
        await self.supervisor.stop_all()
        self.resources.clear()
        self.tasks.clear(list(self.units))
        self.preload_configured()

    def preload_configured(self) -> None:
        """Start the unit processes `preload` names, in the background."""
        for kind in self.cfg.preload:
            self.spawn(self.preload(kind))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background. The loop holds tasks only weakly: keep each until it ends."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reload_resources(self, kind: str, gate: asyncio.Event) -> None:
        try:
            for res_id, (data, payload) in list(self.resources.get(kind, {}).items()):
                answer = await self.internal.request(kind, "load_resource", f"{kind}.resource", data, payload=payload)
                if answer["error"]["code"] != 0:
                    log.error("reloading resource %s of %s after a restart failed: %s", res_id, kind, answer)
        finally:
            gate.set()
            if self._reloading.get(kind) is gate:
                del self._reloading[kind]

    async def preload(self, kind: str) -> None:
        for host in self.supervisor.hosts_of(kind):
            try:
                await self.supervisor.ensure(host)
            except StackFlowError as e:
                log.error("preloading %s failed: %s", host, e)

    async def close(self) -> None:
        await self.supervisor.close()
        if self._monitor is not None:
            self.control.disable_monitor()
            self._monitor.close(0)
        self.control.close(0)
        self.ctx.term()


def _orphan(principal: str) -> str:
    """The principal of tasks whose client left: the next client of that kind to drive them adopts them."""
    return "orphan:" + principal.split(":", 1)[0]
