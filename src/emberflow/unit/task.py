"""A task: one unit instance with its input queue, worker thread and output channel.

The worker thread owns the task's XPUB data socket (ZMQ sockets are single-threaded), so a
slow subscriber backpressures exactly the task that produces (XPUB_NODROP), nobody else. It
also reads the data frames of its lossless links on this machine itself (`unit.direct`): no
hand-off from the host's thread on the way to `on_frame`.
Outputs for clients go to the host's main loop as encoded control messages, through a
per-thread PUSH to `inproc://outbox`; the main loop forwards them to sys unchanged.

What a unit receives and what its results become is the unit contract, in `unit.inputs` and
`unit.outputs`; this module adds the threads, queues, cancellation and the bus.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import zmq

from emberflow.bus import control
from emberflow.bus.control import NO_CONN, Hops
from emberflow.bus.frame import BusFrame
from emberflow.bus.queue import LinkQueue, Policy
from emberflow.protocol.envelope import error_reply
from emberflow.protocol.errors import Code, Reason, StackFlowError
from emberflow.unit.base import Chunk, TaskContext, Unit, UnitParams, collect
from emberflow.unit.direct import DirectLinks
from emberflow.unit.inputs import INCOMPLETE, InputAssembler
from emberflow.unit.outputs import ChunkShaper, Out, cancelled, shape

log = logging.getLogger("emberflow.task")

OUTBOX = "inproc://outbox"


@dataclass(slots=True)
class WorkItem:
    """One thing for the worker to do. Request items (`infer`, `chunk`) know who asked."""

    kind: str  # "infer" | "chunk" | "frame" | "wake" | "call"
    value: Any
    epoch: int
    request_id: str = ""
    conn: int = NO_CONN
    hops: Hops = field(default_factory=list)

    @property
    def ends_request(self) -> bool:
        """Handling this item completes a client request (a whole input, or a stream's last chunk)."""
        return self.kind == "infer" or (self.kind == "chunk" and self.value.last)


class Task:
    def __init__(
        self,
        unit: Unit,
        params: UnitParams,
        work_id: str,
        *,
        data_addr: str,
        setup_request_id: str,
        ctx: zmq.Context[Any],
        model: dict[str, Any] | None,
        last_control: Callable[[], tuple[str, int]] = lambda: ("0", NO_CONN),
        queue_size: int = 64,
        also_bind: str | None = None,
    ):
        self.unit = unit
        self.params = params
        self.work_id = work_id
        self.kind = type(unit).kind
        self.data_addr = data_addr  # a `tcp://ADDR:*` becomes the address really bound, once started
        self._also_bind = also_bind  # a second address (tcp) for subscribers on other machines
        self.remote_addr: str | None = None
        self.model = model or {}
        self.inputs: list[str] = list(params.input)
        self.link_policy: dict[str, Policy] = {}
        self.last_request_id = setup_request_id  # outputs carry the last inference's, else setup's
        self.queue = LinkQueue(queue_size)
        self.direct = DirectLinks(ctx)  # lossless data links the worker reads itself
        self._frame_turn = False  # the worker's next turn goes to a direct frame before queued data
        self._stash: list[bytes] | None = None  # a direct frame read while sleeping, not yet taken
        self._interrupted_at = 0.0  # direct frames published before it are stale (monotonic)
        # Links from this machine (kept by the host): their publishers' stamps are on our clock.
        self.local_links: set[str] = set()
        self.input = InputAssembler(self.kind, unit.inputs.values(), type(unit).streams_input())
        self._last_control = last_control  # StackFlow answers inference errors with it (§3.4)
        self._ctx = ctx
        self._epoch = 0  # bumped by a wake: queued and running work of older epochs is cancelled
        self._abort_current = False  # set by pause or a cancel: the running item stops at its next piece
        self._running: WorkItem | None = None
        self._chunk_shaper = ChunkShaper()
        self._item: WorkItem | None = None  # the item whose outputs are being sent
        self._out_index = 0  # output stream index; back to 0 after each finish chunk
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"task-{work_id}", daemon=True)
        self.stats: dict[str, Any] = {
            "inferences": 0,
            "errors": 0,
            "outputs": 0,
            "aborted": 0,
            "last_ms": None,
            "refused": 0,
            "frames_missed": 0,
        }
        self._published = 0  # frames this task numbered (BusFrame.seq)
        self._seen: dict[str, int] = {}  # upstream work id -> the last frame number read from it
        resources = unit.context.resources if hasattr(unit, "context") else None  # set by the host
        unit.context = TaskContext(work_id, emit=self._emit_extra, post=self._post, resources=resources)

    # --- called from the host's main thread (never blocks) -----------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5)

    def submit_inference(
        self, object: str, data: Any, payload: bytes | None, request_id: str, conn: int, hops: Hops
    ) -> None:
        """Decode one client inference message and queue the work once the input is complete.
        A full queue refuses the request at once (-21): the host loop must never wait."""
        value = self.input.feed(object, data, payload)
        if value is INCOMPLETE:
            return
        kind = "chunk" if isinstance(value, Chunk) else "infer"
        item = WorkItem(kind, value, self._epoch, request_id, conn, hops)
        if not self.queue.put(item, timeout=0):
            self.stats["refused"] += 1
            if kind == "chunk":
                self.input.restart()
            raise StackFlowError(
                Code.TASK_FULL,
                reason=Reason.QUEUE_FULL,
                detail=f"{self.work_id} already has {self.queue.maxsize} requests waiting; "
                "send the next one after an answer arrives",
            )

    def submit_frame(self, frame: BusFrame) -> None:
        """A frame from a linked task. System frames (declared by their unit, e.g. wake words)
        interrupt; the host reads a lossless link only while the queue has room."""
        if frame.source not in self.direct.sources:
            # A direct link's numbers are split between two readers (its system frames come
            # here, its data to the worker), so gaps would be no loss; and it is a link on this
            # machine, with no connection to break: counting is for links from other machines.
            self._count_missed(frame)
        if frame.system:
            self.wake(frame)
            return
        policy = self.link_policy.get(frame.source, Policy.LOSSLESS)
        key = frame.source if policy is Policy.LATEST else None
        self.queue.put(WorkItem("frame", frame, self._epoch), latest_key=key, timeout=0)

    def _count_missed(self, frame: BusFrame) -> None:
        """Frame numbers skipped on a link are frames lost on the way: counted and logged. The
        first frame read from a source sets where its numbering starts (a link made mid-stream)."""
        last = self._seen.get(frame.source)
        if frame.seq:
            self._seen[frame.source] = frame.seq
        if last is not None and frame.seq > last + 1:
            missed = frame.seq - last - 1
            self.stats["frames_missed"] += missed
            log.warning(
                "%s: %d frame(s) from %s never arrived (numbers %d-%d)",
                self.work_id,
                missed,
                frame.source,
                last + 1,
                frame.seq - 1,
            )

    def cancel(self, conn: int, request_id: str) -> bool:
        """The client of a request left: stop it if it runs, drop it if it waits."""
        running = self._running
        if running is not None and running.conn == conn and running.request_id == request_id:
            self._abort_current = True
            self.unit.context.cancelled.set()
            return True
        dropped = self.queue.remove(
            lambda item: isinstance(item, WorkItem) and item.conn == conn and item.request_id == request_id
        )
        self.stats["aborted"] += len(dropped)
        if any(item.ends_request for item in dropped):
            self._send(control.Done(self.work_id, conn, request_id))
        return bool(dropped)

    def interrupt(self, since: float | None = None) -> None:
        """Barge-in: cancel running work and everything queued. Queued client inferences stay in
        the queue only to be answered as cancelled, so no caller waits forever. Frames waiting on
        direct links go if published before `since` (the wake's own publishing; default now)."""
        self._epoch += 1
        self._interrupted_at = max(self._interrupted_at, time.monotonic() if since is None else since)
        self.unit.context.cancelled.set()
        self.queue.flush(keep=lambda item: item.kind in ("infer", "chunk"))
        self.input.restart()

    def stop_current(self) -> None:
        """`pause`: abort the running work only (StackFlow); queued requests still run."""
        self._abort_current = True
        self.unit.context.cancelled.set()

    def wake(self, frame: BusFrame | None = None) -> None:
        if self.unit.interrupt_on_wake:
            # What its publisher sent after the wake is kept, as it was when every frame came
            # through the queue in the order it arrived (a ticker's result right after its tick).
            self.interrupt(since=self._published_at(frame))
        self.queue.put(WorkItem("wake", frame, self._epoch), system=True)

    def _published_at(self, frame: BusFrame | None) -> float | None:
        if frame is None or frame.source not in self.local_links:
            return None  # another machine's clock: no use here
        for where, at in reversed(frame.hops):
            if where == frame.source:
                return at
        return None

    def _post(self, fn: Callable[[], Any]) -> None:
        self.queue.put(WorkItem("call", fn, self._epoch))  # from a unit's own thread: may wait

    def post_action(self, fn: Callable[[], Any]) -> None:
        """A custom action runs on the task thread, ahead of queued data."""
        self.queue.put(WorkItem("call", fn, self._epoch), system=True)

    def stop(self) -> None:
        """Exit: queued requests are answered as cancelled, then the worker ends."""
        self.interrupt()
        self.queue.close()
        self._thread.join(timeout=5)  # the host loop waits here: keep it shorter than the watchdog
        if not self._thread.is_alive():
            self.direct.close_bell()  # a hung worker keeps its fd: it may still poll it
        try:
            self.unit.teardown()
        except Exception:  # teardown must not take the process down
            log.exception("teardown of %s failed", self.work_id)

    def info(self) -> dict[str, Any]:
        p = self.params
        out: dict[str, Any] = {
            "model": p.model,
            "response_format": p.response_format,
            "enoutput": p.enoutput,
            "inputs": list(self.inputs),
        }
        # emberflow extensions; StackFlow clients read only the keys above
        if self.model:
            out["resolved_model"] = self.model.get("mode")
        out["queue"] = self.queue.stats()
        out["stats"] = dict(self.stats)
        extra = self.unit.info()
        if extra:
            out["unit"] = extra
        return out

    # --- worker thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        self._pub = self._ctx.socket(zmq.XPUB)
        self._pub.setsockopt(zmq.XPUB_NODROP, 1)  # lossless: block instead of dropping silently
        self._pub.setsockopt(zmq.SNDHWM, 256)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.bind(self.data_addr)
        self.data_addr = self._pub.getsockopt_string(zmq.LAST_ENDPOINT)
        if self._also_bind:
            self._pub.bind(self._also_bind)
            self.remote_addr = self._pub.getsockopt_string(zmq.LAST_ENDPOINT)
        self._out = self._ctx.socket(zmq.PUSH)
        self._out.setsockopt(zmq.LINGER, 0)
        self._out.connect(OUTBOX)
        self.direct.open()
        self._ready.set()
        try:
            while (item := self._next()) is not None:
                self._handle(item)
        finally:
            self.direct.close()
            self._pub.close()
            self._out.close()

    def _next(self) -> WorkItem | None:
        """The next thing to do: system items first, then direct frames and queued items in
        turn (neither starves the other); None once the queue is closed and drained. In between,
        the worker sleeps in `direct.wait`, woken by a frame on its links or by the queue."""
        while True:
            if self._frame_turn and not self.queue.system_waiting() and not self.queue.closed:
                self._frame_turn = False
                if (item := self._direct_frame()) is not None:
                    return item
            queued: WorkItem | None = self.queue.get(timeout=0)
            if queued is not None:
                self._frame_turn = True
                return queued
            if self.queue.closed:
                return None
            if (item := self._direct_frame()) is not None:
                return item
            self._stash = self.direct.wait(self.queue)  # a frame: taken on the next turn

    def _direct_frame(self) -> WorkItem | None:
        """A frame from a direct link, as the host would have queued it. One published before
        the last interrupt (a wake) is flushed, as the interrupt flushed the queued ones: the
        host thread may not touch our socket to do it. Direct links are links on this machine,
        so the publisher's stamp and ours are on one clock."""
        parts, self._stash = self._stash, None
        if parts is None and (parts := self.direct.recv()) is None:
            return None
        frame = BusFrame.from_parts(parts)
        published = frame.hops[-1][1] if frame.hops else float("inf")  # unstamped: never stale
        frame.stamp(f"{self.work_id}.recv")
        if published < self._interrupted_at:
            self.queue.count_flushed(1)
            return None
        return WorkItem("frame", frame, self._epoch)

    def _handle(self, item: WorkItem) -> None:
        self._item = item
        if item.epoch != self._epoch:  # queued before a wake
            if item.ends_request:
                self.last_request_id = item.request_id
                self.stats["aborted"] += 1
                self._send_outs(cancelled(stream=self.params.streams_output, per_call=self.unit.stream_per_call), [])
                self._done(item)
            return
        self._abort_current = False
        flag = self.unit.context.cancelled
        if flag.is_set():  # is_set() takes no lock: the common case costs nothing
            flag.clear()
        started = time.monotonic()
        if item.request_id:
            self.last_request_id = item.request_id
        hops = [*self._hops_of(item), (f"{self.work_id}.start", started)]
        if item.kind in ("infer", "frame") or (item.kind == "chunk" and item.value.first):
            self.stats["inferences"] += 1
        self.unit.context.hops = hops  # units add named stamps with context.mark()
        self._running = item
        try:
            self._produce(item, hops)
        except StackFlowError as e:
            self._send_error(e, item)
        except Exception as e:
            log.error("%s inference failed:\n%s", self.work_id, traceback.format_exc())
            self._send_error(StackFlowError(Code.MODEL_RUN, detail=f"{type(e).__name__}: {e}"), item)
        finally:
            self._running = None
        self.stats["last_ms"] = round((time.monotonic() - started) * 1000, 2)
        self._done(item)

    @staticmethod
    def _hops_of(item: WorkItem) -> Hops:
        """The item's stamps so far (not a copy: `_handle` builds a new list from them)."""
        if item.kind in ("infer", "chunk"):
            return item.hops
        frame = item.value if item.kind in ("frame", "wake") else None
        return frame.hops if frame is not None else []

    def _produce(self, item: WorkItem, hops: Hops) -> None:
        stream = self.params.streams_output
        if item.kind == "chunk":
            with closing(self._pieces(self.unit.on_chunk(item.value), item.epoch)) as pieces:
                self._send_outs(self._chunk_shaper.shape(item.value, pieces, stream=stream), hops)
            return
        if item.kind == "infer":
            result = self.unit.infer(item.value)
        elif item.kind == "frame":
            result = self.unit.on_frame(item.value)
        elif item.kind == "wake":
            result = self.unit.on_wake(item.value)
        else:
            result = item.value()
        if result is None:
            return  # e.g. on_frame waiting for the rest of an upstream stream
        with closing(self._pieces(result, item.epoch)) as pieces:
            self._send_outs(shape(pieces, stream=stream, per_call=self.unit.stream_per_call), hops)

    def _pieces(self, result: Any, epoch: int) -> Generator[Any, None, None]:
        """What the unit produced, piece by piece, until a wake, `pause` or cancel aborts it. Use
        it with `closing()`: leaving early closes the unit's generator (stops llama.cpp decoding)."""
        it = iter(collect(result))
        try:
            for piece in it:
                if epoch != self._epoch or self._abort_current:
                    self.stats["aborted"] += 1
                    return
                yield piece
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def _send_outs(self, outs: Any, hops: Hops) -> None:
        for out in outs:
            self._send_out(out, hops)

    def _send_out(self, out: Out, hops: Hops) -> None:
        fmt = self.params.response_format or f"{self.kind}.utf-8"
        data, self._out_index = out.message_data(self._out_index)
        self._publish_and_send(fmt, data, hops, system=self.unit.system_frames)
        self.stats["outputs"] += 1

    def _publish_and_send(
        self, object: str, data: Any, hops: Hops, system: bool = False, client: bool = True, payload: bytes = b""
    ) -> None:
        """Raw bytes travel as the frame payload on the bus and as the control message's binary
        part; base64 exists only at the JSON edge. An explicit `payload` keeps `data` beside it on
        the bus (e.g. PCM with its rate)."""
        bus_data, client_data = data, None if payload else data  # beside a payload: bus only
        if not payload:
            if isinstance(data, (bytes, bytearray)):
                payload, bus_data, client_data = bytes(data), None, None
            elif isinstance(data, dict) and isinstance(data.get("delta"), (bytes, bytearray)):
                payload = bytes(data["delta"])
                bus_data = client_data = {**data, "delta": ""}  # the client's delta is the payload
        self._published += 1
        frame = BusFrame(
            self.work_id, object, bus_data, payload, system=system, hops=list(hops), seq=self._published
        ).stamp(self.work_id)
        self._publish(frame)
        if self.params.enoutput and client:
            item = self._item
            conn = item.conn if item is not None else NO_CONN
            self._send(control.Output(self.work_id, conn, self.last_request_id, object, client_data, payload or None))

    def _send(self, msg: control.Message) -> None:
        self._out.send_multipart(control.encode(msg))

    def _send_error(self, err: StackFlowError, item: WorkItem) -> None:
        """StackFlow answers it with the bare unit and the last control request (§3.4); it goes to
        the client whose request failed (or, for linked input, to the last control client)."""
        self.stats["errors"] += 1
        rid, ctl_conn = self._last_control()
        conn = item.conn if item.conn != NO_CONN else ctl_conn
        self._send(
            control.Failed(
                self.work_id,
                conn,
                item.request_id or self.last_request_id,
                error_reply(rid, self.kind, err),
                err.reason,
            )
        )

    def _done(self, item: WorkItem) -> None:
        if item.ends_request and item.conn != NO_CONN:
            self._send(control.Done(self.work_id, item.conn, item.request_id))

    def _publish(self, frame: BusFrame) -> None:
        parts = frame.to_parts()
        while True:
            try:
                self._pub.send_multipart(parts, flags=zmq.NOBLOCK)
                return
            except zmq.Again:  # a lossless subscriber is full: wait (backpressure), never drop
                if self.queue.closed:
                    return
                time.sleep(0.001)

    def _emit_extra(self, object: str, data: Any, payload: bytes, system: bool = False, client: bool = True) -> None:
        # A unit declaring system frames makes every frame in its response format one (a wake
        # emitted as it is found); its other emits (the wake chime) stay data.
        system = system or (self.unit.system_frames and object == self.params.response_format)
        self._publish_and_send(object, data, self.unit.context.hops, system, client, payload)
