"""The unit process: hosts the tasks of one unit kind and talks to sys over ZeroMQ.

    python -m emberflow.unit.host --kind llm --control ipc://.../control --rundir /tmp/...

Control (sys <-> host) is a DEALER socket whose identity is the kind, carrying the typed messages
of `emberflow.bus.control`. Replies to client requests are produced here, so sys never needs to
know what a unit does. Data between tasks flows over each task's XPUB socket.

The main loop never blocks: model loading and resource loading run in threads, a full task
queue refuses the request (-21) instead of waiting, and a heartbeat tells sys the loop is alive.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from pydantic import ValidationError

from emberflow.bus import control
from emberflow.bus.control import NO_CONN
from emberflow.bus.frame import BusFrame, system_topic_of, topic_of
from emberflow.bus.queue import Policy
from emberflow.models.catalogue import Catalogue, ModelRef, ModelUnavailable
from emberflow.protocol.envelope import NONE, RESOURCE_ACTIONS, Request, decode_base64, error_reply, reply
from emberflow.protocol.errors import Code, Reason, StackFlowError
from emberflow.unit.base import IO, TaskContext, Unit, UnitParams
from emberflow.unit.registry import load_unit_class
from emberflow.unit.task import OUTBOX, Task

log = logging.getLogger("emberflow.host")

# The host's own actions on a task, by name (a unit's own are declared with `@unit.action`).
TaskAction = Callable[["UnitHost", Task, control.Action], None]
TASK_ACTIONS: dict[str, TaskAction] = {}


LINK_HANDSHAKE_S = 2.0  # longest wait for a link's connection to another machine (see _await_handshake)


def task_action(name: str) -> Callable[[TaskAction], TaskAction]:
    def register(fn: TaskAction) -> TaskAction:
        TASK_ACTIONS[name] = fn
        return fn

    return register


class UnitHost:
    """`data_bind` (`tcp://ADDR`) binds task data sockets on that address instead of ipc files
    in `rundir`, for a host on another machine than sys; `remote_bind` binds them there too,
    besides ipc, so tasks on other machines can read this host's tasks (`TaskCreated.remote_addr`).
    `identity` names this host on the control socket: its kind, or `kind#N` for a replica."""

    def __init__(
        self,
        unit_cls: type[Unit],
        control_addr: str,
        rundir: str,
        model_dirs: list[Path] | None = None,
        *,
        data_bind: str | None = None,
        remote_bind: str | None = None,
        identity: str | None = None,
    ):
        self.unit_cls = unit_cls
        self.kind = unit_cls.kind
        self.rundir = rundir
        self.data_bind = data_bind
        self.remote_bind = remote_bind
        self.ctx = zmq.Context(io_threads=1)  # one I/O thread: this is a 2-core edge box
        self.control = self.ctx.socket(zmq.DEALER)
        self.control.setsockopt(zmq.IDENTITY, (identity or self.kind).encode())
        self.control.setsockopt(zmq.LINGER, 500)
        self.control.connect(control_addr)
        self.outbox = self.ctx.socket(zmq.PULL)
        self.outbox.bind(OUTBOX)
        self.tasks: dict[str, Task] = {}
        self.subs: dict[str, zmq.Socket[bytes]] = {}  # work_id -> its SUB socket for upstream links
        # The poller is kept current when something changes (a task comes or goes, a queue fills
        # or gets room), not rebuilt every turn: a frame's hand-over is followed straight by poll.
        self._poller = zmq.Poller()
        self._poller.register(self.control, zmq.POLLIN)
        self._poller.register(self.outbox, zmq.POLLIN)
        self._readers: dict[zmq.Socket[bytes], str] = {}  # SUB sockets in the poller -> their work_id
        self._held: set[str] = set()  # work ids whose SUB is out of the poller: their queue is full
        self.pending_setups = 0
        self.catalogue = Catalogue() if unit_cls.needs_model else None
        # Where files a client names may be: a `model` path, an audio file, a video file.
        self.file_roots = list(model_dirs or [])
        # Last control request: inference-data errors go there (StackFlow §3.4).
        self.last_control: tuple[str, int] = ("0", NO_CONN)
        self._main_calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        # Personalisation resources by id, shared by every task of this process (Unit.resource).
        self.resources: dict[str, Any] = {}
        self._running = True
        self._handlers: dict[type[control.Message], Callable[[Any], None]] = {
            control.Setup: self._setup,
            control.Action: self._action,
            control.Inference: self._inference,
            control.Cancel: self._cancel,
            control.Shutdown: self._shutdown_requested,
        }

    # --- plumbing ----------------------------------------------------------------------------------
    # Only the main thread touches `control`, `tasks` and `subs`. Other threads (model loading,
    # task workers) reach the main loop through PUSH sockets on inproc://outbox.
    def _to_sys(self, msg: control.Message) -> None:
        self.control.send_multipart(control.encode(msg))

    def _call_on_main(self, fn: Callable[[], None]) -> None:
        """From a worker thread: run `fn` on the main loop, the only thread that may use `control`."""
        self._main_calls.put(fn)
        wake = self.ctx.socket(zmq.PUSH)
        wake.connect(OUTBOX)
        wake.send(b"main")
        wake.close(linger=1000)

    def run(self) -> None:
        self._to_sys(control.Ready(self.kind, os.getpid(), self.unit_cls.schema()))
        next_beat = 0.0
        while self._running:
            now = time.monotonic()
            if now >= next_beat:
                self._to_sys(control.Heartbeat(sorted(self.tasks)))
                next_beat = now + control.HEARTBEAT_S
            if self._held:
                self._resume_held()
            for sock, _ in self._poller.poll(100):
                if sock is self.control:
                    self._on_control(self.control.recv_multipart())
                elif sock is self.outbox:
                    self._drain_outbox(64)  # outputs of a generating LLM arrive in bursts
                else:
                    self._on_frame(sock)
        self._shutdown()

    def _read(self, work_id: str) -> None:
        """Put the task's SUB socket (back) in the poller."""
        sub = self.subs[work_id]
        if sub not in self._readers:
            self._poller.register(sub, zmq.POLLIN)
            self._readers[sub] = work_id

    def _unread(self, work_id: str) -> None:
        sub = self.subs.get(work_id)
        if sub is not None and self._readers.pop(sub, None) is not None:
            self._poller.unregister(sub)

    def _resume_held(self) -> None:
        """Tasks whose full queue got room are read again (checked each turn, at most 100 ms apart)."""
        for work_id in list(self._held):
            task = self.tasks.get(work_id)
            if task is None:
                self._held.discard(work_id)
            elif not task.queue.full():
                self._held.discard(work_id)
                self._read(work_id)

    def _drain_outbox(self, at_most: int | None = None) -> None:
        """Forward what task threads sent (already-encoded control messages) to sys."""
        n = 0
        while at_most is None or n < at_most:
            try:
                parts = self.outbox.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            n += 1
            if parts == [b"main"]:
                self._main_calls.get()()
            else:
                self.control.send_multipart(parts)

    def _on_frame(self, sock: zmq.Socket[bytes]) -> None:
        wid = self._readers[sock]
        task = self.tasks[wid]
        if task.queue.full():
            # A task whose lossless queue is full stops being read: the frame stays in the socket
            # (never dropped) and backpressure reaches the publisher, until the queue has room.
            self._unread(wid)
            self._held.add(wid)
            return
        task.submit_frame(BusFrame.from_parts(sock.recv_multipart()).stamp(f"{wid}.recv"))

    def _shutdown(self) -> None:
        for work_id in list(self.tasks):
            self._remove_task(work_id)
        self.outbox.close(0)
        self.control.close()
        self.ctx.term()

    def _shutdown_requested(self, msg: control.Shutdown) -> None:
        self._running = False

    # --- control -----------------------------------------------------------------------------------
    def _on_control(self, parts: list[bytes]) -> None:
        try:
            msg = control.decode(parts)
        except control.ControlError:
            log.exception("bad control message from sys")
            return
        handler = self._handlers.get(type(msg))
        if handler is None:
            log.error("unexpected control message %s", type(msg).__name__)
            return
        request: Request | None = getattr(msg, "request", None)
        try:
            handler(msg)
        except StackFlowError as e:
            if request is not None:
                conn: int = getattr(msg, "conn", NO_CONN)
                self._to_sys(control.Answer(conn, error_reply(request.request_id, request.work_id, e), e.reason))

    def _answer(self, conn: int, msg: dict[str, Any]) -> None:
        self._to_sys(control.Answer(conn, msg))

    def _inference(self, msg: control.Inference) -> None:
        req = msg.request
        task = self.tasks.get(req.work_id)
        try:
            if task is None:
                raise StackFlowError(Code.INFERENCE_PUSH, reason=Reason.TASK_LOST)
            task.submit_inference(req.object, req.data, req.payload, req.request_id, msg.conn, msg.hops)
        except StackFlowError as e:
            if task is None or e.reason is Reason.QUEUE_FULL:  # answered as the request itself
                answer = error_reply(req.request_id, req.work_id, e)
            else:  # StackFlow sends inference-data errors as the bare unit and the last control request
                answer = error_reply(self.last_control[0], self.kind, e)
            self._to_sys(control.Failed(req.work_id, msg.conn, req.request_id, answer, e.reason))
            self._to_sys(control.Done(req.work_id, msg.conn, req.request_id))

    def _cancel(self, msg: control.Cancel) -> None:
        task = self.tasks.get(msg.work_id)
        if task is not None:
            task.cancel(msg.conn, msg.request_id)

    # --- setup -------------------------------------------------------------------------------------
    def _setup(self, msg: control.Setup) -> None:
        req = msg.request
        self.last_control = (req.request_id, msg.conn)
        if not isinstance(req.data, dict):
            raise StackFlowError(Code.JSON_FORMAT, "json format error.", detail="setup data must be a JSON object")
        existing = self.tasks.get(msg.work_id)
        if existing is not None and self.unit_cls.singleton:
            self._reconfigure(msg, existing)
            return
        if len(self.tasks) + self.pending_setups >= self.unit_cls.max_tasks:
            raise StackFlowError(Code.TASK_FULL, detail=f"{self.kind} allows {self.unit_cls.max_tasks} task(s)")
        model_ref = self._resolve_model(req.data)
        params = self._params(req.data, model_ref, msg.defaults)
        self.pending_setups += 1
        threading.Thread(
            target=self._load, name=f"setup-{msg.work_id}", daemon=True, args=(msg, params, model_ref, None)
        ).start()

    def _params(
        self, data: dict[str, Any], model_ref: ModelRef | None, defaults: dict[str, Any] | None = None
    ) -> UnitParams:
        """The task's params: the model's mode_param, then the daemon's configured defaults, then
        the client's own keys, which may not name descriptor-only fields or files outside the roots."""
        self._check_client_files(data)
        refused = sorted(self.unit_cls.Params.descriptor_only() & set(data))
        if refused:
            raise StackFlowError(
                Code.PARAMETER,
                detail=f"{', '.join(refused)}: set by the model descriptor only, not by setup (they name files on "
                "this machine); put them in the mode_param of a descriptor in ~/.config/emberflow/models and set up "
                "that model by name",
            )
        merged = {**(model_ref.mode_param if model_ref else {}), **(defaults or {}), **data}
        try:
            return self.unit_cls.Params.model_validate(merged)
        except ValidationError as e:
            raise StackFlowError(Code.MODEL_LOADING, detail=_validation_text(e)) from None

    def _check_client_files(self, data: dict[str, Any]) -> None:
        """Files a client's setup names for the unit to read or write (an audio file sink, a video
        file as camera input) must be under the file roots (the sandbox, `model_dirs`,
        `media_dirs`): no client makes a unit open a file of its choosing."""
        try:
            named = self.unit_cls.client_files(data)
        except (TypeError, AttributeError, ValueError):
            return  # malformed values: the params' own validation explains them
        roots = [r.resolve() for r in self.file_roots]
        for name in named:
            path = Path(name).expanduser()
            resolved = path.resolve() if path.is_absolute() else None
            if resolved is None or not any(resolved == r or r in resolved.parents for r in roots):
                raise StackFlowError(
                    Code.PARAMETER,
                    detail=f"file {name!r}: files a client names must be absolute paths under "
                    f"{', '.join(str(r) for r in roots)} (sys.push puts files in the sandbox; add a directory "
                    "to `media_dirs` in the config to allow more)",
                )

    def _reconfigure(self, msg: control.Setup, task: Task) -> None:
        """A repeated setup of a singleton task (the audio device): StackFlow acks it; keys of the
        unit's own params (audio `source`, `sink`, ...) set it up again in place, at the same data
        address, so its subscribers and links stay."""
        req = msg.request
        assert isinstance(req.data, dict)
        own = set(self.unit_cls.Params.model_fields) - set(UnitParams.model_fields)
        if not own & set(req.data):
            self._answer(msg.conn, reply(req.request_id, msg.work_id))
            return
        try:
            params = self._params(req.data, None, msg.defaults)
        except StackFlowError as e:
            raise StackFlowError(Code.PARAMETER, detail=e.detail) from None
        threading.Thread(
            target=self._load, name=f"setup-{msg.work_id}", daemon=True, args=(msg, params, None, task)
        ).start()

    def _load(self, msg: control.Setup, params: UnitParams, model_ref: ModelRef | None, replaces: Task | None) -> None:
        """Runs in a thread: model loading takes seconds and must not block other tasks' control."""
        unit = self.unit_cls()
        # usable during setup (marks, warm-up, resources); emits go nowhere yet
        unit.context = TaskContext(msg.work_id, resources=self.resources)
        error: StackFlowError | None = None
        try:
            if model_ref is not None and self.catalogue is not None:
                unit.model_path = self.catalogue.prepare(model_ref)  # type: ignore[attr-defined]
                unit.model_info = model_ref.descriptor  # type: ignore[attr-defined]
            unit.setup(params)
        except StackFlowError as e:
            error = e
        except Exception as e:
            log.exception("setup of %s failed", msg.work_id)
            error = StackFlowError(Code.MODEL_LOADING, detail=f"{type(e).__name__}: {e}")
        self._call_on_main(lambda: self._finish_setup(msg, params, model_ref, unit, error, replaces))

    def _finish_setup(
        self,
        msg: control.Setup,
        params: UnitParams,
        model_ref: ModelRef | None,
        unit: Unit,
        error: StackFlowError | None,
        replaces: Task | None,
    ) -> None:
        req, work_id = msg.request, msg.work_id
        if replaces is None:
            self.pending_setups -= 1
        if error is not None:
            if replaces is not None:
                self._answer(
                    msg.conn, error_reply(req.request_id, work_id, StackFlowError(Code.PARAMETER, detail=error.detail))
                )
            else:
                self._to_sys(control.SetupFailed(msg.conn, error_reply(req.request_id, req.unit, error), work_id))
            return
        if replaces is not None:
            replaces.stop()  # its data address is bound again by the new task below
        # tcp binds `:*`: the task reads back the port it got (Task.data_addr after start); a
        # singleton set up again keeps its address (its readers stay connected)
        data_addr = f"{self.data_bind}:*" if self.data_bind else f"ipc://{self.rundir}/{work_id}.pub"
        also_bind = f"{self.remote_bind}:*" if self.remote_bind else None
        if replaces is not None:
            data_addr, also_bind = replaces.data_addr, replaces.remote_addr or also_bind
        task = Task(
            unit,
            params,
            work_id,
            data_addr=data_addr,
            setup_request_id=req.request_id,
            ctx=self.ctx,
            model=model_ref.descriptor if model_ref else None,
            last_control=lambda: self.last_control,
            also_bind=also_bind,
        )
        task.start()
        self.tasks[work_id] = task
        if replaces is not None:  # same links, same subscription socket; the new worker reads its own
            task.link_policy, task.inputs = dict(replaces.link_policy), list(replaces.inputs)
            task.local_links = set(replaces.local_links)
            for source, addr in replaces.direct.sources.items():
                task.direct.link(source, addr)
            self._answer(msg.conn, reply(req.request_id, work_id))
            return
        sub = self.subs[work_id] = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 256)
        sub.setsockopt(zmq.LINGER, 0)
        for source, addr in msg.links.items():
            policy = Policy(msg.policies.get(source, "lossless"))
            self._link_source(task, source, addr, policy, source in msg.system_sources)
        self._read(work_id)
        self._to_sys(
            control.TaskCreated(
                msg.conn,
                reply(req.request_id, work_id),
                work_id,
                task.data_addr,
                model_ref.name if model_ref else None,
                task.remote_addr,
            )
        )

    def _resolve_model(self, data: dict[str, Any]) -> ModelRef | None:
        if self.catalogue is None:
            return None
        try:
            return self.catalogue.find(
                data.get("model"), self.unit_cls.model_type or self.kind, path_roots=self.file_roots
            )
        except ModelUnavailable as e:
            raise StackFlowError(Code.MODEL_LOADING, detail=str(e)) from None

    # --- actions -----------------------------------------------------------------------------------
    def _action(self, msg: control.Action) -> None:
        req = msg.request
        self.last_control = (req.request_id, msg.conn)
        if req.action in RESOURCE_ACTIONS and req.work_id == self.kind:
            self._resource_action(msg)
            return
        if req.work_id == self.kind and req.action in self.unit_cls.unit_actions:
            self._unit_action(msg)
            return
        if req.action == "taskinfo" and req.work_id not in self.tasks:
            self._answer(
                msg.conn, reply(req.request_id, req.work_id, data=sorted(self.tasks), object=f"{self.kind}.tasklist")
            )
            return
        task = self.tasks.get(req.work_id)
        if task is None:
            raise StackFlowError(Code.UNIT_NOT_EXIST)
        handler = TASK_ACTIONS.get(req.action)
        if handler is not None:
            handler(self, task, msg)
        elif req.action in self.unit_cls.custom_actions:
            method = getattr(task.unit, self.unit_cls.custom_actions[req.action])
            task.post_action(lambda: method(req.data))
            self._answer(msg.conn, reply(req.request_id, req.work_id))
        else:
            raise StackFlowError(Code.NO_UNIT_ACTION)

    def _link_source(self, task: Task, source: str, addr: str, policy: Policy, system: bool = False) -> None:
        """The data frames of a lossless link from this machine are read by the task's worker
        itself (no hand-off between threads: `unit.direct`). Read here, on the main thread: the
        system frames of every link (a wake must interrupt a busy task), every frame of a source that
        sends system frames (`system`: in order, so a wake's chime never overtakes the wake),
        `latest` links (conflated while the task works) and links from other machines (see
        `Task._direct_frame`)."""
        task.link_policy[source] = policy
        sub = self.subs[task.work_id]
        here = not addr.startswith("tcp://")
        monitor = None if here else sub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        sub.connect(addr)
        sub.setsockopt(zmq.SUBSCRIBE, system_topic_of(source))
        if here:
            task.local_links.add(source)
        if policy is Policy.LOSSLESS and here and not system:
            task.direct.link(source, addr)
        else:
            sub.setsockopt(zmq.SUBSCRIBE, topic_of(source))
        if monitor is not None:
            _await_handshake(sub, monitor, addr)

    def _remove_task(self, work_id: str) -> None:
        self._unread(work_id)
        self._held.discard(work_id)
        task = self.tasks.pop(work_id, None)
        sub = self.subs.pop(work_id, None)
        if sub is not None:
            sub.close(0)
        if task is not None:
            task.stop()
            _unlink_ipc(task.data_addr)

    def _unit_action(self, msg: control.Action) -> None:
        """An action of the unit itself (work_id is the kind), in a thread: it may take a while."""
        req, conn = msg.request, msg.conn
        method = getattr(self.unit_cls, self.unit_cls.unit_actions[req.action])

        def run() -> None:
            try:
                result = method(req.data)
                obj, data = result if isinstance(result, tuple) else (f"{self.kind}.{req.action}", result)
                answer = reply(req.request_id, self.kind, data=NONE if data is None else data, object=obj)
            except StackFlowError as e:
                answer = error_reply(req.request_id, self.kind, e)
            except Exception as e:
                log.exception("unit action %s of %s failed", req.action, self.kind)
                answer = error_reply(
                    req.request_id, self.kind, StackFlowError(Code.MODEL_RUN, detail=f"{type(e).__name__}: {e}")
                )
            self._call_on_main(lambda: self._answer(conn, answer))

        threading.Thread(target=run, name=f"action-{req.action}", daemon=True).start()

    # --- personalisation resources (unit-level: work_id is the kind) -------------------------------
    def _resource_action(self, msg: control.Action) -> None:
        req, conn = msg.request, msg.conn
        kind_of_data = self.unit_cls.resource
        if kind_of_data is None:
            raise StackFlowError(Code.NO_UNIT_ACTION, detail=f"unit {self.kind!r} takes no resources")
        if req.action == "list_resources":
            self._answer(
                conn, reply(req.request_id, self.kind, data=sorted(self.resources), object=f"{self.kind}.resources")
            )
            return
        data = req.data if isinstance(req.data, dict) else {}
        res_id = data.get("id")
        if not isinstance(res_id, str) or not 0 < len(res_id) <= 128:
            raise StackFlowError(Code.PARAMETER, detail='data must be {"id": "<1-128 chars>", "data": <resource>}')
        if req.action == "unload_resource":
            if res_id not in self.resources:
                raise StackFlowError(
                    Code.PARAMETER, detail=f"resource {res_id!r} is not loaded", reason=Reason.NOT_FOUND
                )
            self._release(res_id, self.resources.pop(res_id))
            self._to_sys(
                control.ResourceChanged(
                    conn,
                    reply(req.request_id, self.kind, data={"id": res_id}, object=f"{self.kind}.resource"),
                    res_id,
                    False,
                )
            )
            return
        value = _resource_value(kind_of_data, data.get("data"), req.payload)

        def load() -> None:  # a thread: loading a voice or a lexicon may take a while
            error: StackFlowError | None = None
            resource = None
            try:
                resource = self.unit_cls.load_resource(res_id, value)
            except StackFlowError as e:
                error = e
            except Exception as e:
                log.exception("loading resource %s of %s failed", res_id, self.kind)
                error = StackFlowError(Code.PARAMETER, detail=f"resource {res_id!r}: {type(e).__name__}: {e}")
            self._call_on_main(lambda: self._resource_loaded(req, conn, res_id, resource, error))

        threading.Thread(target=load, name=f"resource-{res_id}", daemon=True).start()

    def _resource_loaded(
        self, req: Request, conn: int, res_id: str, resource: Any, error: StackFlowError | None
    ) -> None:
        if error is not None:
            self._to_sys(control.Answer(conn, error_reply(req.request_id, self.kind, error), error.reason))
            return
        if res_id in self.resources:
            self._release(res_id, self.resources[res_id])  # replaced by the new version
        self.resources[res_id] = resource
        self._to_sys(
            control.ResourceChanged(
                conn,
                reply(req.request_id, self.kind, data={"id": res_id}, object=f"{self.kind}.resource"),
                res_id,
                True,
            )
        )

    def _release(self, res_id: str, resource: Any) -> None:
        try:
            self.unit_cls.unload_resource(res_id, resource)
        except Exception:  # a failing unload must not take the other tasks down
            log.exception("unloading resource %s of %s failed", res_id, self.kind)


# --- the host's task actions ------------------------------------------------------------------------
@task_action("exit")
def _exit(host: UnitHost, task: Task, msg: control.Action) -> None:
    req = msg.request
    host._remove_task(req.work_id)
    host._drain_outbox()  # the cancelled answers of its queued requests reach sys before the release
    host._to_sys(control.TaskReleased(msg.conn, reply(req.request_id, req.work_id), req.work_id))


@task_action("pause")
def _pause(host: UnitHost, task: Task, msg: control.Action) -> None:
    task.stop_current()
    host.unit_cls.pause(task.unit)
    host._answer(msg.conn, reply(msg.request.request_id, msg.request.work_id))


@task_action("work")
def _work(host: UnitHost, task: Task, msg: control.Action) -> None:
    if not host.unit_cls.supports("work"):
        raise StackFlowError(Code.NO_UNIT_ACTION)
    task.unit.resume()
    host._answer(msg.conn, reply(msg.request.request_id, msg.request.work_id))


@task_action("taskinfo")
def _taskinfo(host: UnitHost, task: Task, msg: control.Action) -> None:
    req = msg.request
    host._answer(msg.conn, reply(req.request_id, req.work_id, data=task.info(), object=f"{host.kind}.taskinfo"))


@task_action("link")
def _link(host: UnitHost, task: Task, msg: control.Action) -> None:
    req = msg.request
    target = req.data
    if not isinstance(target, str) or not msg.addr:
        raise StackFlowError(Code.LINK, detail=f"no live task {target!r} to link to")
    ack = reply(req.request_id, req.work_id)
    if target in task.inputs and target in task.link_policy:
        host._answer(msg.conn, ack)  # already linked: a second connection would duplicate every frame
        return
    host._link_source(task, target, msg.addr, Policy(msg.policy), msg.system_source)
    if target not in task.inputs:
        task.inputs.append(target)
    task.post_action(lambda: task.unit.on_link(target, True))
    host._to_sys(control.Linked(msg.conn, ack, req.work_id, target, True))


@task_action("unlink")
def _unlink(host: UnitHost, task: Task, msg: control.Action) -> None:
    req = msg.request
    target = req.data
    if not isinstance(target, str) or target not in task.inputs:
        raise StackFlowError(Code.LINK)
    task.direct.unlink(target)
    task.local_links.discard(target)
    sub = host.subs[req.work_id]
    sub.setsockopt(zmq.UNSUBSCRIBE, system_topic_of(target))
    sub.setsockopt(zmq.UNSUBSCRIBE, topic_of(target))  # not subscribed when direct: zmq ignores it
    if msg.addr:
        try:
            sub.disconnect(msg.addr)
        except zmq.ZMQError:
            pass
    task.inputs.remove(target)
    task.link_policy.pop(target, None)
    task.post_action(lambda: task.unit.on_link(target, False))
    host._to_sys(control.Linked(msg.conn, reply(req.request_id, req.work_id), req.work_id, target, False))


def _await_handshake(sub: zmq.Socket[bytes], monitor: zmq.Socket[bytes], addr: str) -> None:
    """Until the connection to another machine's publisher is up. ZMQ connects in the background
    and a publisher sends only to the subscriptions it has heard of, so frames published between
    the link's ack and the handshake would be lost (a loaded machine or a slow network takes
    milliseconds there); over ipc it is microseconds. Bounded: the link works once it is up."""
    from zmq.utils.monitor import recv_monitor_message

    deadline = time.monotonic() + LINK_HANDSHAKE_S
    try:
        while (left := deadline - time.monotonic()) > 0 and monitor.poll(int(left * 1000) + 1):
            event = recv_monitor_message(monitor)
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:  # the monitor began with this connect
                return
        log.warning("link to %s: no handshake within %.0f s; frames sent before it are lost", addr, LINK_HANDSHAKE_S)
    finally:
        sub.disable_monitor()
        monitor.close(0)


def _unlink_ipc(addr: str) -> None:
    """A task's ipc socket file goes with it (a SIGKILLed process leaves them: sys sweeps those)."""
    if addr.startswith("ipc://"):
        try:
            os.unlink(addr[len("ipc://") :])
        except OSError:
            pass


def _resource_value(kind: IO, data: Any, payload: bytes | None) -> Any:
    """Resource data decoded to the unit's declared resource kind (binary: RAW frame or base64)."""
    if data is None and payload is None:
        raise StackFlowError(Code.EMPTY_DATA, detail="data.data (the resource) is missing")
    if kind in (IO.AUDIO_PCM, IO.IMAGE, IO.TENSOR):
        return payload if payload is not None else decode_base64(data, f"a {kind.value} resource")
    if kind in (IO.TEXT, IO.TEXT_STREAM) and not isinstance(data, str):
        raise StackFlowError(Code.PARAMETER, detail="this unit's resources are text: data.data must be a string")
    return data


def _validation_text(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'data'}: {err['msg']}" for err in e.errors())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="emberflow unit process (started by sys)")
    ap.add_argument("--kind", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--rundir", required=True)
    ap.add_argument("--unit-path", default=None, help="module:Class of a user unit")
    ap.add_argument("--model-dir", action="append", default=[], help="a directory files named by clients may be under")
    ap.add_argument(
        "--remote-bind", default=None, help="tcp://ADDR: also bind task data sockets there, for tasks on other machines"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("EMBERFLOW_LOG", "INFO"), format=f"%(asctime)s {args.kind} %(levelname)s %(message)s"
    )
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # sys owns our lifecycle
    unit_cls = load_unit_class(args.kind, args.unit_path)
    UnitHost(unit_cls, args.control, args.rundir, [Path(d) for d in args.model_dir], remote_bind=args.remote_bind).run()


if __name__ == "__main__":
    main()
