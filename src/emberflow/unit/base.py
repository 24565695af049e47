"""The Unit: the one concept of emberflow. Built-in units and user units subclass this same class.

A unit declares what it is (kind, typed setup parameters, inputs, outputs, task limit) and
implements a few methods. One *instance* is one task (`llm.1002`); a unit process hosts up to
`max_tasks` instances. The host (emberflow.unit.host) does all protocol work: StackFlow
chunk assembly and index checks, base64 at the JSON edge, stream vs whole-message output from
`response_format`, request ids, bus publishing, queues. The unit only sees typed values.

    class Echo(Unit):
        kind = "echo"
        inputs = {"text": IO.TEXT}
        outputs = {"text": IO.TEXT_STREAM}

        class Params(UnitParams):
            times: int = Field(1, ge=1, le=10)

        def setup(self, params):
            self.times = params.times

        def infer(self, text):
            for _ in range(self.times):
                yield text
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import TypeVar as DefaultTypeVar

from emberflow.protocol.envelope import RESOURCE_ACTIONS
from emberflow.protocol.errors import Code, StackFlowError

if TYPE_CHECKING:
    from emberflow.bus.frame import BusFrame

_F = TypeVar("_F", bound=Callable[..., Any])


class IO(str, Enum):
    """Kinds of data a unit consumes or produces. They drive validation, routes and docs."""

    TEXT = "text"
    TEXT_STREAM = "text.stream"
    AUDIO_PCM = "audio.pcm"  # S16LE mono; rate in the unit's params
    IMAGE = "image"  # encoded bytes (JPEG/PNG)
    TENSOR = "tensor"
    EVENT = "event"  # bool events: wake word, VAD
    JSON = "json"


class Final:
    """Yield `Final(value)` to end a stream with content: `{"delta": value, "finish": true}`.
    Units whose streams span several calls (ASR partials, then the final text) use it with
    `stream_per_call = False`; without it every infer/on_frame result is one whole answer."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return f"Final({self.value!r})"


@dataclass(frozen=True)
class Chunk:
    """One piece of a streamed input: a StackFlow `*.stream*` message (`{"delta", "index",
    "finish"}`) or a WebSocket session frame (status 0 begin, 1 continue, 2 end).
    `data` is already decoded to the unit's input kind (bytes for audio/image, str for text)."""

    data: Any
    index: int
    last: bool

    @property
    def first(self) -> bool:
        return self.index == 0


class UnitParams(BaseModel):
    """Setup parameters common to every model unit (StackFlow §6.1). Unknown keys are ignored,
    as the real server ignores them; keys of the model's `mode_param` arrive merged in."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field("", description="Model name from the catalogue, a StackFlow alias, or a file path.")
    response_format: str = Field("", description="Output type tag; containing 'stream' means chunked output.")
    enoutput: bool = Field(True, description="Send results to the client (the bus always gets them).")
    input: list[str] = Field(default_factory=list, description="Input sources: own kind, work_ids, sys.pcm.")

    @field_validator("input", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        if v is None or v == "None":
            return []
        return [v] if isinstance(v, str) else v

    @property
    def streams_output(self) -> bool:
        return "stream" in self.response_format

    @classmethod
    def descriptor_only(cls) -> frozenset[str]:
        """The fields declared with `descriptor_field`: a client's setup may not set them."""
        return frozenset(
            name
            for name, f in cls.model_fields.items()
            if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("descriptor_only")
        )


def descriptor_field(default: Any = "", description: str = "") -> Any:
    """A setup parameter that only a model descriptor's `mode_param` sets, because it names files
    or code on this machine (a tokenizer file, a label package, a projector): a client that
    gives it in `setup` is refused, so no client can make a unit open a file of its choosing."""
    return Field(
        default,
        description=f"{description} Set by the model descriptor only.".strip(),
        json_schema_extra={"descriptor_only": True},
    )


class UnitError(StackFlowError):
    """Raise from a unit to fail with a specific StackFlow code, e.g.
    `raise UnitError(Code.MODEL_RUN, detail="image too small")`. User error codes (AIGES style)
    go in `detail`; the code stays a protocol code clients understand."""

    def __init__(self, code: Code | int = Code.MODEL_RUN, message: str | None = None, detail: str | None = None):
        super().__init__(code, message, detail)


class TaskContext:
    """What the host gives each unit instance: identity, cancellation and a way to emit."""

    def __init__(
        self,
        work_id: str,
        emit: Callable[..., None] | None = None,
        post: Callable[[Callable[[], Any]], None] | None = None,
        resources: Mapping[str, Any] | None = None,
    ):
        self.work_id = work_id
        self.resources: Mapping[str, Any] = resources if resources is not None else {}  # by id, shared
        self.cancelled = threading.Event()  # set by pause/interrupt; long loops should check it
        self._emit = emit
        self._post = post
        self.hops: list[tuple[str, float]] = []  # stamps of the item being processed

    def mark(self, name: str, t: float | None = None) -> None:
        """Add a named timestamp to the current item's hop trail (e.g. 'speech_end'), so
        latency breakdowns downstream can see it."""
        import time

        self.hops.append((f"{self.work_id}.{name}", time.monotonic() if t is None else t))

    def post(self, fn: Callable[[], Any]) -> None:
        """Run `fn` on the task's thread, from any thread (microphone, file reader, timer).
        Its return value is output like infer's; it may call `emit`."""
        if self._post is None:
            fn()
        else:
            self._post(fn)

    def emit(
        self, object: str, data: Any = None, payload: bytes = b"", *, system: bool = False, client: bool = True
    ) -> None:
        """Publish an extra output from inside infer/on_frame (e.g. a wake event found while
        feeding audio). `system=True` makes it a system frame: downstream tasks are interrupted
        and their queued input flushed, as on a wake word. `client=False` keeps it on the bus."""
        if self._emit is not None:
            self._emit(object, data, payload, system, client)


def action(name: str, *, unit_level: bool = False) -> Callable[[_F], _F]:
    """Declare a unit's own action.

    `@action("trigger") def trigger(self, data): ...` answers `{"action": "trigger", "work_id":
    "kws.1002", "data": ...}`: it runs on the task's thread, ahead of queued data, and is acked at once.

    `unit_level=True` makes it an action of the unit itself, sent to the bare kind (StackFlow's
    `{"action": "list_camera", "work_id": "camera"}`), with no task needed: write it as a
    classmethod (`@classmethod` above `@action`); it runs in a thread of the unit process, and
    what it returns is the reply's data, or `(object, data)` to name the reply's object."""

    def mark(fn: _F) -> _F:
        fn.__emberflow_action__ = name  # type: ignore[attr-defined]
        fn.__emberflow_unit_level__ = unit_level  # type: ignore[attr-defined]
        return fn

    return mark


P = DefaultTypeVar("P", bound=UnitParams, default=UnitParams)


class Unit(Generic[P]):
    """Subclass it as `class MyUnit(Unit[MyParams])` so `setup(self, params: MyParams)` is typed."""

    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""
    max_tasks: ClassVar[int] = 1
    Params: ClassVar[type[UnitParams]] = UnitParams
    inputs: ClassVar[dict[str, IO]] = {}
    outputs: ClassVar[dict[str, IO]] = {}
    # The model type this unit runs (descriptor `type`); defaults to the kind.
    model_type: ClassVar[str | None] = None
    # Unit kinds that need no model (audio, user utilities) set this False.
    needs_model: ClassVar[bool] = True
    # On a wake word (or any system frame) the host cancels running work and drops queued
    # input before calling on_wake. Units that consume a live stream (ASR, VAD) set this False:
    # their queued audio is still wanted, and they decide themselves what the wake means.
    interrupt_on_wake: ClassVar[bool] = True
    # True: each infer/on_frame result is a whole answer and the host ends it with a finish
    # chunk. False: the unit ends streams itself by yielding Final(...).
    stream_per_call: ClassVar[bool] = True
    # The declared result (a pydantic model, AIGES `responseCls`): in the schema and OpenAPI,
    # and `emberflow run-local` checks every result against it. None: results are not declared.
    Result: ClassVar[type[BaseModel] | None] = None
    # Personalisation resources (AIGES wrapperLoadRes/UnloadRes): data loaded once per unit
    # process under an id (`load_resource` action, `PUT /units/{kind}/resources/{id}`), shared
    # by all its tasks, which pick one by id (usually a setup parameter) with `get_resource`.
    # The kind of data a resource is (IO.TEXT, IO.JSON, binary); None: no resources.
    resource: ClassVar[IO | None] = None
    # The unit's outputs are system frames downstream: linked tasks are interrupted and their
    # queued input flushed before `on_wake` (a wake word). Extra `emit`s say so themselves.
    system_frames: ClassVar[bool] = False
    # One task per process whose work id is the kind itself (StackFlow's `audio`): a device.
    # Every client may drive it, and a repeated setup reconfigures it in place.
    singleton: ClassVar[bool] = False
    # The unit's own actions, name -> method name: methods marked with `@action(name)`, on a task
    # (`custom_actions`) or on the unit itself (`unit_actions`, `@action(name, unit_level=True)`).
    custom_actions: ClassVar[dict[str, str]] = {}
    unit_actions: ClassVar[dict[str, str]] = {}
    # The queue policy a link from this unit's tasks gets when the client names none: "latest" for
    # a camera (only the newest frame matters, drops counted), "lossless" for everything else.
    output_policy: ClassVar[str] = "lossless"

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        on_task: dict[str, str] = {}
        on_unit: dict[str, str] = {}
        for attr in dir(cls):
            member = getattr(cls, attr, None)
            if attr.startswith("on_action_") and not hasattr(member, "__emberflow_action__"):
                raise TypeError(
                    f"{cls.__name__}.{attr}: declare unit actions with a decorator: "
                    f"`@action({attr[len('on_action_') :]!r})` (from emberflow.unit import action)"
                )
            name = getattr(member, "__emberflow_action__", None)
            if isinstance(name, str):
                (on_unit if getattr(member, "__emberflow_unit_level__", False) else on_task)[name] = attr
        cls.custom_actions, cls.unit_actions = on_task, on_unit

    context: TaskContext

    # --- lifecycle -----------------------------------------------------------------------
    def setup(self, params: P) -> None:
        """Load the model. Raise (any exception, or UnitError) to fail the setup with -5."""

    def teardown(self) -> None:
        """Release resources. Called on exit, reset and process shutdown."""

    # --- work ----------------------------------------------------------------------------
    def infer(self, data: Any) -> Any | Iterator[Any]:
        """One-shot work. Return a value, or yield pieces for streaming output.

        May be called concurrently for different tasks (one instance per task), never for the
        same task. Check `self.context.cancelled` in long loops that don't yield.
        """
        raise UnitError(Code.NO_UNIT_ACTION, detail=f"unit {self.kind!r} does not implement infer()")

    def on_frame(self, frame: BusFrame) -> Any | Iterator[Any] | None:
        """A frame arrived from a linked upstream task. Return what `infer` would return, or None.

        Default: a complete upstream text becomes `infer` input. Text streams come in two styles
        and both work: ASR sends cumulative hypotheses whose final chunk holds the whole text;
        LLMs send increments and an empty final chunk, so the increments are joined.
        """
        data = frame.data
        if isinstance(data, dict) and "delta" in data:
            pieces = self.__dict__.setdefault("_upstream_text", {}).setdefault(frame.source, [])
            delta = data.get("delta", "")
            if not data.get("finish"):
                if isinstance(delta, str):
                    pieces.append(delta)
                return None
            data = delta if delta else "".join(pieces)
            pieces.clear()
        if isinstance(data, str) and data:
            return self.infer(data)
        if frame.payload and set(self.inputs.values()) & {IO.AUDIO_PCM, IO.IMAGE, IO.TENSOR}:
            return self.infer(frame.payload)  # only units that take binary input get raw bytes
        return None

    def on_chunk(self, chunk: Chunk) -> Any | Iterator[Any] | None:
        """One piece of a streamed input (AIGES session write; begin/continue/end status).

        Not overridden: the host gathers the pieces and calls `infer` once on the whole input.
        Override it to work while input still arrives: return or yield partial results for any
        chunk (they reach the client at once as `finish: false` stream chunks), and the final
        result for the `last` one. Keep per-stream state on `self`; reset it at `chunk.first`.
        """
        raise NotImplementedError  # never called: the host checks `streams_input()` first

    @classmethod
    def client_files(cls, data: dict[str, Any]) -> list[str]:
        """The files a client's setup `data` names for this unit to open (e.g. an audio sink
        `file:<path>`); the host refuses any outside the configured file roots. Units that open
        files named in setup override this."""
        return []

    @classmethod
    def streams_input(cls) -> bool:
        return cls.on_chunk is not Unit.on_chunk

    def on_wake(self, frame: BusFrame | None = None) -> Any | Iterator[Any] | None:
        """A wake word (or another system frame) arrived. With `interrupt_on_wake` the host has
        already cancelled running work and flushed queued input (barge-in). May return output."""

    def on_link(self, source: str, linked: bool) -> None:
        """A `link` (linked=True) or `unlink` changed this task's inputs at run time."""

    # --- control -------------------------------------------------------------------------
    def pause(self) -> None:
        """`pause` action. The host cancels running work first. Override to stop capturing."""

    def resume(self) -> None:
        """`work` action. Units that don't override it answer -18, as StackFlow's llm does."""
        raise UnitError(Code.NO_UNIT_ACTION)

    # --- personalisation resources --------------------------------------------------------
    @classmethod
    def load_resource(cls, res_id: str, data: Any) -> Any:
        """Turn resource data (decoded to the `resource` kind: str, dict, or bytes) into what
        tasks use, e.g. parse a hot-word list or load a voice. Runs off the task threads; raise
        UnitError to refuse it. Default: keep the data as it is."""
        return data

    @classmethod
    def unload_resource(cls, res_id: str, resource: Any) -> None:
        """Release what `load_resource` made. A task still using it keeps a working reference."""

    def get_resource(self, res_id: str) -> Any:
        """The loaded resource `res_id`, or a clear -22 error naming how to load it."""
        try:
            return self.context.resources[res_id]
        except KeyError:
            loaded = ", ".join(sorted(self.context.resources)) or "none"
            raise UnitError(
                Code.PARAMETER,
                detail=f"resource {res_id!r} is not loaded (loaded: {loaded}); send "
                f"action load_resource to work_id {self.kind!r} first",
            ) from None

    # --- introspection -------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Unit-specific state for `taskinfo` (under the key "unit")."""
        return {}

    @classmethod
    def supports(cls, action: str) -> bool:
        if action == "work":
            return cls.resume is not Unit.resume
        if action in RESOURCE_ACTIONS:
            return cls.resource is not None
        return (
            action in ("setup", "exit", "pause", "link", "unlink", "taskinfo", "inference")
            or action in cls.custom_actions
        )

    @classmethod
    def _client_params_schema(cls) -> dict[str, Any]:
        """The Params schema without the fields only a model descriptor sets."""
        schema = cls.Params.model_json_schema()
        for name in cls.Params.descriptor_only():
            schema.get("properties", {}).pop(name, None)
        return schema

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """JSON description of the unit: what HTTP routes, OpenAPI, docs and the dashboard use."""
        return {
            "kind": cls.kind,
            "description": cls.description or (cls.__doc__ or "").strip().split("\n")[0],
            "max_tasks": cls.max_tasks,
            "params": cls._client_params_schema(),
            "descriptor_params": sorted(cls.Params.descriptor_only()),
            "inputs": {k: v.value for k, v in cls.inputs.items()},
            "outputs": {k: v.value for k, v in cls.outputs.items()},
            "result": cls.Result.model_json_schema() if cls.Result is not None else None,
            "streams_input": cls.streams_input(),
            "resource": cls.resource.value if cls.resource is not None else None,
            "actions": [
                a
                for a in (
                    "setup",
                    "exit",
                    "pause",
                    "work",
                    "link",
                    "unlink",
                    "taskinfo",
                    "inference",
                    *RESOURCE_ACTIONS,
                    *cls.custom_actions,
                )
                if cls.supports(a)
            ],
            "unit_actions": sorted(cls.unit_actions),
            "singleton": cls.singleton,
            "system_frames": cls.system_frames,
            "output_policy": cls.output_policy,
        }


def collect(result: Any) -> Iterable[Any]:
    """Normalise what infer/on_frame returned into an iterable of output pieces."""
    if result is None:
        return ()
    if isinstance(result, (str, bytes, dict, list, bool, int, float, Final)):
        return (result,)
    return result  # type: ignore[no-any-return]  # a generator or another iterable of pieces
