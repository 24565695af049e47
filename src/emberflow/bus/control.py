"""The control channel between sys and a unit host: one frozen dataclass per message and direction.

On the wire a message is a ZeroMQ multipart `[header, payload?]`: the header is JSON with the
message type and its fields; the optional second part is raw bytes, both ways. A request's RAW
payload rides in it towards the unit, and a binary result (PCM, embeddings, images, tensors)
rides in it back, so bytes never take a base64 round trip inside the machine: base64 exists only
at the JSON edge (`protocol.envelope.encode`).

    parts = encode(Output("llm.1000", conn=8000, request_id="q1", object="llm.utf-8", data="hi"))
    assert decode(parts) == Output("llm.1000", conn=8000, request_id="q1", object="llm.utf-8", data="hi")

Facts travel as typed fields, never as flags inside a reply: `TaskCreated` says a task exists
(with its data address), `TaskReleased` that it is gone, `Done` that a request is fully answered.
Replies for clients travel ready-made (`reply`, a StackFlow envelope built by the host), because
only the host knows what its unit answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from emberflow.protocol.envelope import Request
from emberflow.protocol.errors import Reason

NO_CONN = -1  # an output no request asked for (a linked frame, a wake): it goes to the task's owner

# (stage name, monotonic seconds): stamped at each hop, so latency breakdowns come for free
Hops = list[tuple[str, float]]


class ControlError(ValueError):
    """A control frame that is not a message of this module (a bug, or a version mismatch)."""


@dataclass(frozen=True, slots=True)
class Message:
    """Base of every control message. Subclasses are registered by name for `decode`."""

    registry: ClassVar[dict[str, type[Message]]] = {}
    # The field whose bytes travel as the binary part: "payload", or "request" for its RAW payload.
    binary: ClassVar[str | None] = None

    def __init_subclass__(cls, **kw: Any) -> None:
        # (no super(): `slots=True` rebuilds the class, and zero-argument super() would name the old one)
        Message.registry[cls.__name__] = cls


# --- sys -> unit host ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Setup(Message):
    """Create task `work_id` from a client's setup request, subscribed to these upstream tasks."""

    binary: ClassVar[str | None] = "request"
    request: Request
    conn: int
    work_id: str
    links: dict[str, str] = field(default_factory=dict)  # upstream work_id -> its data address
    policies: dict[str, str] = field(default_factory=dict)  # upstream work_id -> queue policy
    # Upstream tasks whose unit declares system frames (a wake word): the host reads all of
    # their frames itself, in order, so what follows a wake (its chime) is never ahead of it.
    system_sources: list[str] = field(default_factory=list)
    # The daemon's configured defaults for this kind (config `audio:`): trusted, unlike the
    # request's own keys, which override them.
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Action(Message):
    """Any other unit action (exit, pause, work, taskinfo, link, unlink, resources, custom ones).
    For link/unlink, `addr`, `policy` and `system_source` (see `Setup.system_sources`) describe
    the upstream task."""

    binary: ClassVar[str | None] = "request"
    request: Request
    conn: int
    addr: str | None = None
    policy: str = "lossless"
    system_source: bool = False


@dataclass(frozen=True, slots=True)
class Inference(Message):
    binary: ClassVar[str | None] = "request"
    request: Request
    conn: int
    hops: Hops = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Cancel(Message):
    """The client of this request is gone: drop it if queued, stop it if running."""

    work_id: str
    conn: int
    request_id: str


@dataclass(frozen=True, slots=True)
class Shutdown(Message):
    pass


# --- unit host -> sys ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ready(Message):
    kind: str
    pid: int
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """Sent every `HEARTBEAT_S` by the host's main loop: a unit that stops sending it is hung."""

    tasks: list[str]


@dataclass(frozen=True, slots=True)
class Answer(Message):
    """The reply to one control request of `conn` (an error reply included)."""

    conn: int
    reply: dict[str, Any]
    reason: Reason | None = None  # of an error, for in-process clients


@dataclass(frozen=True, slots=True)
class TaskCreated(Message):
    conn: int
    reply: dict[str, Any]
    work_id: str
    data_addr: str
    model: str | None  # the resolved catalogue name
    # The same data socket on tcp, for tasks on other machines, when its data_addr is ipc.
    remote_addr: str | None = None


@dataclass(frozen=True, slots=True)
class SetupFailed(Message):
    """The setup of `work_id` failed; the work id is free again."""

    conn: int
    reply: dict[str, Any]
    work_id: str


@dataclass(frozen=True, slots=True)
class TaskReleased(Message):
    conn: int
    reply: dict[str, Any]
    work_id: str


@dataclass(frozen=True, slots=True)
class Linked(Message):
    """`work_id` now reads (linked) or no longer reads `source`."""

    conn: int
    reply: dict[str, Any]
    work_id: str
    source: str
    linked: bool


@dataclass(frozen=True, slots=True)
class ResourceChanged(Message):
    """Resource `res_id` of the unit was loaded (or replaced) or unloaded."""

    conn: int
    reply: dict[str, Any]
    res_id: str
    loaded: bool


@dataclass(frozen=True, slots=True)
class Output(Message):
    """One output of a task for its client: the answer to request `request_id` of `conn`, or,
    with `conn == NO_CONN`, output no request asked for (it goes to the task's owner)."""

    binary: ClassVar[str | None] = "payload"
    work_id: str
    conn: int
    request_id: str
    object: str
    data: Any = None  # JSON part; a stream chunk's `delta` is "" when the payload carries it
    payload: bytes | None = None

    def client_data(self) -> Any:
        """What the client's `data` is: the JSON part, the payload, or a chunk whose delta is it."""
        if self.payload is None:
            return self.data
        if isinstance(self.data, dict) and "delta" in self.data:
            return {**self.data, "delta": self.payload}
        return self.payload


@dataclass(frozen=True, slots=True)
class Failed(Message):
    """An inference of `conn` failed. `reply` is StackFlow's error (unit name and the last
    control request id, §3.4); `request_id` names the request that really failed."""

    work_id: str
    conn: int
    request_id: str
    reply: dict[str, Any]
    reason: Reason | None = None


@dataclass(frozen=True, slots=True)
class Done(Message):
    """Request `request_id` of `conn` is fully answered (after its last Output or Failed)."""

    work_id: str
    conn: int
    request_id: str


HEARTBEAT_S = 1.0


# --- codec --------------------------------------------------------------------------------------
def _request_fields(req: Request) -> dict[str, Any]:
    return {
        "request_id": req.request_id,
        "work_id": req.work_id,
        "action": req.action,
        "object": req.object,
        "data": req.data,
        "extra": req.extra,
    }


_FIELDS: dict[type[Message], tuple[str, ...]] = {}  # per class, once: dataclasses.fields() is slow per call


def _field_names(cls: type[Message]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))
    return names


def encode(msg: Message) -> list[bytes]:
    """The message as ZeroMQ parts: `[header]`, or `[header, bytes]` when it carries a binary part."""
    header: dict[str, Any] = {"type": type(msg).__name__}
    blob: bytes | None = None
    for name in _field_names(type(msg)):
        value = getattr(msg, name)
        if isinstance(value, Request):
            blob = value.payload if name == msg.binary else None
            value = _request_fields(value)
        elif name == msg.binary:
            blob = value
            continue
        header[name] = value
    parts = [json.dumps(header, separators=(",", ":")).encode()]
    if blob is not None:
        parts.append(bytes(blob))
    return parts


M = TypeVar("M", bound=Message)


def decode(parts: list[bytes]) -> Message:
    try:
        header = json.loads(parts[0])
        cls = Message.registry[header.pop("type")]
    except (ValueError, KeyError, TypeError, IndexError):
        raise ControlError(f"not a control message: {parts[:1]!r}") from None
    blob = parts[1] if len(parts) > 1 else None
    kwargs: dict[str, Any] = {}
    for name in _field_names(cls):
        if name == "request":
            kwargs["request"] = Request(**header["request"], payload=blob if cls.binary == "request" else None)
        elif name == cls.binary:
            kwargs[name] = blob
        elif name == "hops":
            kwargs["hops"] = [tuple(h) for h in header.get("hops", ())]
        elif name == "reason":
            kwargs["reason"] = None if header.get("reason") is None else Reason(header["reason"])
        elif name in header:
            kwargs[name] = header[name]
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ControlError(f"bad {cls.__name__} message: {e}") from None
