"""A task: one unit instance with its input queue, worker thread and output channel.

The worker thread owns the task's XPUB data socket (ZMQ sockets are single-threaded), so a
slow subscriber backpressures exactly the task that produces (XPUB_NODROP), nobody else.
Outputs for clients go to the host's main loop through a per-thread PUSH to `inproc://outbox`.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import traceback
from contextlib import closing
from typing import Any, Callable, Iterator

import zmq

from emberflow.bus.frame import BusFrame
from emberflow.bus.queue import LinkQueue, Policy
from emberflow.protocol.envelope import NONE, decode_base64, reply
from emberflow.protocol.errors import Code, StackFlowError
from emberflow.unit.base import IO, Chunk, Final, TaskContext, Unit, UnitParams, collect

log = logging.getLogger("emberflow.task")

OUTBOX = "inproc://outbox"


class Task:
    def __init__(self, unit: Unit, params: UnitParams, work_id: str, *, data_addr: str,
                 setup_request_id: str, ctx: zmq.Context, model: dict[str, Any] | None,
                 queue_size: int = 64):
        self.unit = unit
        self.params = params
        self.work_id = work_id
        self.kind = work_id.split(".", 1)[0]
        self.data_addr = data_addr
        self.model = model or {}
        self.inputs: list[str] = list(params.input)
        self.link_policy: dict[str, Policy] = {}
        self.last_request_id = setup_request_id  # outputs carry the last inference's, else setup's
        self.queue = LinkQueue(queue_size)
        self._ctx = ctx
        self._epoch = 0  # bumped by a wake: queued and running work of older epochs is cancelled
        self._abort_current = False  # set by pause: the running item stops at its next piece
        self._next_index = 0  # of the next chunk of the input being streamed in
        self._chunks: list[Any] = []  # pieces gathered for `infer` (units without on_chunk)
        self._b64_carry = ""  # base64 of a streamed chunk that ended mid-quantum
        self._stream_collected: list[Any] = []  # whole-format results of a chunked input so far
        self._out_index = 0  # output stream index; back to 0 after each finish chunk
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"task-{work_id}", daemon=True)
        self.stats = {"inferences": 0, "errors": 0, "outputs": 0, "aborted": 0, "last_ms": None}
        resources = unit.context.resources if hasattr(unit, "context") else None  # set by the host
        unit.context = TaskContext(work_id, emit=self._emit_extra, post=self._post, resources=resources)

    # --- called from the host's main thread ----------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5)

    def submit_inference(self, object: str, data: Any, payload: bytes | None, request_id: str,
                         hops: list) -> None:
        """Decode one client inference message and queue the work once the input is complete."""
        value = self._assemble(object, data, payload)
        if value is _INCOMPLETE:
            return
        if isinstance(value, Chunk):  # a unit that works on streamed input as it arrives
            self.queue.put(("chunk", value, request_id, hops, self._epoch))
            return
        self.queue.put(("infer", value, request_id, hops, self._epoch))

    def submit_frame(self, frame: BusFrame) -> None:
        # A wake: a system frame, or any kws.* message of a wake-word task (StackFlow treats every
        # message on the kws channel as a wake; its other frames, like the chime, are data).
        if frame.system or (frame.source.startswith("kws") and frame.object.startswith("kws")):
            self.wake(frame)
            return
        policy = self.link_policy.get(frame.source, Policy.LOSSLESS)
        key = frame.source if policy is Policy.LATEST else None
        self.queue.put(("frame", frame, self._epoch), latest_key=key)

    def interrupt(self) -> None:
        """Barge-in: cancel running work and everything queued. Queued client inferences stay in
        the queue only to be answered as cancelled, so no caller waits forever."""
        self._epoch += 1
        self.unit.context.cancelled.set()
        self.queue.flush(keep=lambda item: item[0] in ("infer", "chunk"))
        self._restart_input()

    def stop_current(self) -> None:
        """`pause`: abort the running work only (StackFlow); queued requests still run."""
        self._abort_current = True
        self.unit.context.cancelled.set()

    def wake(self, frame: BusFrame | None = None) -> None:
        if self.unit.interrupt_on_wake:
            self.interrupt()
        self.queue.put(("wake", frame, self._epoch), system=True)

    def _post(self, fn: Callable[[], Any]) -> None:
        self.queue.put(("call", fn, self._epoch))

    def post_action(self, fn: Callable[[], Any]) -> None:
        """A custom action runs on the task thread, ahead of queued data."""
        self.queue.put(("call", fn, self._epoch), system=True)

    def stop(self) -> None:
        self.interrupt()
        self.queue.close()
        self._thread.join(timeout=10)
        try:
            self.unit.teardown()
        except Exception:  # teardown must not take the process down
            log.exception("teardown of %s failed", self.work_id)

    def info(self) -> dict[str, Any]:
        p = self.params
        out = {"model": p.model, "response_format": p.response_format, "enoutput": p.enoutput,
               "inputs": list(self.inputs)}
        # emberflow extensions; StackFlow clients read only the keys above
        if self.model:
            out["resolved_model"] = self.model.get("mode")
        out["queue"] = self.queue.stats()
        out["stats"] = dict(self.stats)
        extra = self.unit.info()
        if extra:
            out["unit"] = extra
        return out

    # --- input decoding -------------------------------------------------------------------
    def _assemble(self, object: str, data: Any, payload: bytes | None) -> Any:
        """The input of one inference message: a whole value, a Chunk for units that stream their
        input (`on_chunk`), or _INCOMPLETE while the host gathers a stream for `infer`."""
        if not ("stream" in object and isinstance(data, dict) and "delta" in data):
            return self._check_kind(self._decode(object, data, payload))
        index = data.get("index")
        streams_input = type(self.unit).streams_input()
        if isinstance(index, bool) or not isinstance(index, int):
            index = repr(index)
        elif streams_input and index == 0:
            self._restart_input()  # index 0 begins a new input, even after a failed one
        if index != self._next_index:
            expected = self._next_index
            self._restart_input()
            raise StackFlowError(Code.STREAM_INDEX, detail=f"expected index {expected}, got {index}")
        last = _truthy(data.get("finish"))
        self._next_index = 0 if last else index + 1
        delta = data.get("delta", "")
        if streams_input:  # the unit keeps what it needs of each piece
            return Chunk(self._check_kind(self._decode_piece(object, delta, payload, last)), index, last)
        self._chunks.append(payload if payload is not None else delta)
        if not last:
            return _INCOMPLETE
        parts, self._chunks = [p for p in self._chunks if p not in ("", b"", None)], []
        if parts and all(isinstance(p, (bytes, bytearray)) for p in parts):
            return self._check_kind(b"".join(parts))  # RAW frames: the bytes, joined
        if all(isinstance(p, str) for p in parts):
            return self._check_kind(self._decode(object, "".join(parts), None))
        return self._check_kind(parts[0] if len(parts) == 1 else parts)  # JSON values

    def _restart_input(self) -> None:
        self._next_index, self._chunks, self._b64_carry = 0, [], ""

    def _decode(self, object: str, data: Any, payload: bytes | None) -> Any:
        if payload is not None:
            return payload  # RAW frame: already binary, never base64 on the bus
        return decode_base64(data) if "base64" in object else data

    def _decode_piece(self, object: str, delta: Any, payload: bytes | None, last: bool) -> Any:
        """One chunk on its own. Clients may split a base64 text anywhere, so a tail shorter
        than a 4-character quantum waits for the next chunk."""
        if payload is not None or "base64" not in object or not isinstance(delta, str):
            return self._decode(object, delta, payload)
        text = self._b64_carry + delta
        cut = len(text) if last else len(text) - len(text) % 4
        self._b64_carry = text[cut:]
        return self._decode(object, text[:cut], None)

    def _check_kind(self, data: Any) -> Any:
        """Fit decoded data to the input kinds the unit declares: structured data needs a JSON
        input, bytes become text for text-only units, anything else is a clear -2."""
        kinds = set(self.unit.inputs.values())
        text_only = bool(kinds & {IO.TEXT, IO.TEXT_STREAM}) and not kinds & {IO.AUDIO_PCM, IO.IMAGE, IO.TENSOR}
        if isinstance(data, (dict, list)):
            if IO.JSON in kinds or not kinds:
                return data
            raise StackFlowError(Code.JSON_FORMAT, "json format error.",
                                 detail=f"{self.kind} takes {', '.join(sorted(k.value for k in kinds))}, not JSON")
        if text_only and isinstance(data, bytes):
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                raise StackFlowError(Code.JSON_FORMAT, "json format error.", detail="text is not UTF-8") from None
        if text_only and not isinstance(data, str):
            raise StackFlowError(Code.JSON_FORMAT, "json format error.",
                                 detail=f"{self.kind} expects text, got {type(data).__name__}")
        return data

    # --- worker thread --------------------------------------------------------------------
    def _run(self) -> None:
        self._pub = self._ctx.socket(zmq.XPUB)
        self._pub.setsockopt(zmq.XPUB_NODROP, 1)  # lossless: block instead of dropping silently
        self._pub.setsockopt(zmq.SNDHWM, 256)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.bind(self.data_addr)
        self._out = self._ctx.socket(zmq.PUSH)
        self._out.setsockopt(zmq.LINGER, 0)
        self._out.connect(OUTBOX)
        self._ready.set()
        try:
            while (item := self.queue.get()) is not None:
                self._handle(item)
        finally:
            self._pub.close()
            self._out.close()

    def _handle(self, item: tuple) -> None:
        epoch = item[-1]
        if epoch != self._epoch:  # queued before a wake
            if item[0] == "infer" or (item[0] == "chunk" and item[1].last):
                self.last_request_id = item[2]
                self._answer_cancelled()
            return
        self._abort_current = False
        self.unit.context.cancelled.clear()
        started = time.monotonic()
        if item[0] in ("wake", "call"):
            frame = item[1] if item[0] == "wake" else None
            hops = [*(frame.hops if frame else ()), (f"{self.work_id}.start", started)]
            produce = (lambda: self.unit.on_wake(frame)) if item[0] == "wake" else item[1]
        elif item[0] in ("infer", "chunk"):
            _, value, request_id, hops, _ = item
            self.last_request_id = request_id
            hops = [*hops, (f"{self.work_id}.start", started)]
            if item[0] == "infer":
                produce = lambda: self.unit.infer(value)  # noqa: E731
            else:
                produce = lambda: self.unit.on_chunk(value)  # noqa: E731
        else:
            frame: BusFrame = item[1]
            hops = [*frame.hops, (f"{self.work_id}.start", started)]
            produce = lambda: self.unit.on_frame(frame)  # noqa: E731
        if item[0] in ("infer", "frame") or (item[0] == "chunk" and item[1].first):
            self.stats["inferences"] += 1
        self.unit.context.hops = hops  # units add named stamps with context.mark()
        try:
            if item[0] == "chunk":
                self._emit_chunk_result(item[1], produce, hops, epoch)
            else:
                self._emit_result(produce, hops, epoch)
        except StackFlowError as e:
            self._send_error(e)
        except Exception as e:
            log.error("%s inference failed:\n%s", self.work_id, traceback.format_exc())
            self._send_error(StackFlowError(Code.MODEL_RUN, detail=f"{type(e).__name__}: {e}"))
        self.stats["last_ms"] = round((time.monotonic() - started) * 1000, 2)

    def _pieces(self, result: Any, epoch: int) -> Iterator[Any]:
        """What the unit produced, piece by piece, until a wake or `pause` aborts it. Use it with
        `closing()`: leaving early closes the unit's generator at once (stops llama.cpp decoding)."""
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

    def _emit_result(self, produce: Callable[[], Any], hops: list, epoch: int) -> None:
        result = produce()
        if result is None:
            return  # e.g. on_frame waiting for the rest of an upstream stream
        stream, per_call = self.params.streams_output, self.unit.stream_per_call
        collected, finished = [], False
        with closing(self._pieces(result, epoch)) as pieces:
            for piece in pieces:
                if isinstance(piece, Final):
                    finished = True
                    if stream:
                        self._chunk(piece.value, True, hops)
                    else:
                        self._output(piece.value, hops)
                elif stream:
                    if piece == "" or piece == b"":
                        continue
                    self._chunk(piece, False, hops)
                elif per_call:
                    collected.append(piece)
                # else: a partial result in a non-stream format is not sent (only Final is)
        if not per_call or finished:
            return
        if stream:
            # Every answer ends with a finish chunk, also when aborted, so readers never hang.
            self._chunk("", True, hops)
        elif collected:
            self._output(_join(collected), hops)

    def _emit_chunk_result(self, chunk: Chunk, produce: Callable[[], Any], hops: list, epoch: int) -> None:
        """Results of one streamed-input chunk. In a stream format each piece goes out at once
        and only the last chunk's answer ends the stream (a `Final` before it is one more piece).
        In a whole format there is one answer, at the last chunk: its `Final` value, else every
        piece joined. Every streamed input gets an end, even an empty one: readers never hang."""
        if chunk.first:
            self._stream_collected = []
        stream = self.params.streams_output
        final: Final | None = None
        with closing(self._pieces(produce(), epoch)) as pieces:
            for piece in pieces:
                if chunk.last and isinstance(piece, Final):
                    final = piece
                    break
                value = piece.value if isinstance(piece, Final) else piece
                if not stream:
                    self._stream_collected.append(value)
                elif value not in ("", b""):
                    self._chunk(value, False, hops)
        if not chunk.last:
            return
        pieces, self._stream_collected = self._stream_collected, []
        if stream:
            self._chunk(final.value if final is not None else "", True, hops)
        else:
            self._output(final.value if final is not None else _join(pieces), hops)

    def _answer_cancelled(self) -> None:
        """A request cancelled before it started still gets an end: an empty finished stream, or
        an empty whole answer."""
        self.stats["aborted"] += 1
        if self.params.streams_output:
            self._chunk("", True, [])
        elif self.unit.stream_per_call:
            self._output("", [])

    def _chunk(self, delta: Any, finish: bool, hops: list) -> None:
        self._output({"delta": delta, "index": self._out_index, "finish": finish}, hops)
        self._out_index = 0 if finish else self._out_index + 1

    def _output(self, data: Any, hops: list) -> None:
        fmt = self.params.response_format or f"{self.kind}.utf-8"
        self._publish_and_send(fmt, data, hops)
        self.stats["outputs"] += 1

    def _publish_and_send(self, object: str, data: Any, hops: list, system: bool = False,
                          client: bool = True, payload: bytes = b"") -> None:
        """Raw bytes travel as the frame payload on the bus; base64 only at the JSON edge.
        An explicit `payload` keeps `data` beside it on the bus (e.g. PCM with its rate)."""
        bus_data, client_data = data, data
        if payload:
            client_data = base64.b64encode(payload).decode()
        elif isinstance(data, (bytes, bytearray)):
            payload, bus_data = bytes(data), None
            client_data = base64.b64encode(payload).decode()
        elif isinstance(data, dict) and isinstance(data.get("delta"), (bytes, bytearray)):
            payload = bytes(data["delta"])
            bus_data = {**data, "delta": ""}
            client_data = {**data, "delta": base64.b64encode(payload).decode()}
        frame = BusFrame(self.work_id, object, bus_data, payload, system=system, hops=list(hops)).stamp(self.work_id)
        self._publish(frame)
        if self.params.enoutput and client:
            msg = reply(self.last_request_id, self.work_id, data=NONE if client_data is None else client_data,
                        object=object)
            self._out.send_json({"op": "output", "work_id": self.work_id, "msg": msg})

    def _send_error(self, err: StackFlowError) -> None:
        # The host answers it to the last control connection, as StackFlow does (§3.4).
        self.stats["errors"] += 1
        self._out.send_json({"op": "task_error", "work_id": self.work_id, "code": int(err.code),
                             "message": err.message, "detail": err.detail, "request_id": self.last_request_id})

    def _publish(self, frame: BusFrame) -> None:
        parts = frame.to_parts()
        while True:
            try:
                self._pub.send_multipart(parts, flags=zmq.NOBLOCK)
                return
            except zmq.Again:  # a lossless subscriber is full: wait (backpressure), never drop
                if self.queue._closed:
                    return
                time.sleep(0.001)

    def _emit_extra(self, object: str, data: Any, payload: bytes, system: bool = False, client: bool = True) -> None:
        self._publish_and_send(object, data, self.unit.context.hops, system, client, payload)


def _join(pieces: list[Any]) -> Any:
    """Pieces of one whole answer as one value: text or bytes joined, else the one value or the list."""
    if pieces and all(isinstance(p, str) for p in pieces):
        return "".join(pieces)
    if pieces and all(isinstance(p, (bytes, bytearray)) for p in pieces):
        return b"".join(pieces)
    if not pieces:
        return ""
    return pieces[0] if len(pieces) == 1 else pieces


class _Incomplete:
    pass


_INCOMPLETE = _Incomplete()


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.lower() == "true") or v == 1
