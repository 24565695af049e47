"""Run a unit in-process, without sys or ZeroMQ: for unit tests and quick experiments.

    with LocalTask(LLMUnit, {"model": "smollm2-135m-instruct"}) as task:
        print(task.infer_text("What is the capital of France?"))

It follows the unit contract exactly as the unit host does, because it uses the same code:
parameters are validated like a `setup`, the model is found by the same resolver (multi-part
models assembled once), inputs are fitted to the declared kinds (`unit.inputs`) and results
shaped into what the host would send (`unit.outputs`). See also `emberflow.testing`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from emberflow.protocol.errors import Code
from emberflow.unit.base import Chunk, TaskContext, Unit, UnitError, UnitParams, collect
from emberflow.unit.inputs import INCOMPLETE, InputAssembler, join_pieces
from emberflow.unit.outputs import ChunkShaper, Out, shape


class LocalTask:
    def __init__(self, unit_cls: type[Unit], params: dict[str, Any] | None = None, work_id: str | None = None):
        data = dict(params or {})
        self.unit_cls = unit_cls
        self.emitted: list[tuple[str, Any, bytes]] = []
        self.unit = unit_cls()
        self.resources: dict[str, Any] = {}  # loaded with load_resource(), as the unit process keeps them
        self.unit.context = TaskContext(
            work_id or f"{unit_cls.kind}.0",
            emit=lambda o, d, p, s=False, c=True: self.emitted.append((o, d, p)),
            resources=self.resources,
        )
        merged = data
        if unit_cls.needs_model and data.get("model"):
            from emberflow.models.catalogue import Catalogue, ModelUnavailable

            cat = Catalogue()
            try:  # in-process, the caller is the machine's own user: any model file path is theirs to load
                ref = cat.find(data["model"], unit_cls.model_type or unit_cls.kind, path_roots=[Path("/")])
            except ModelUnavailable as e:  # what a setup over the protocol answers (-5)
                raise UnitError(Code.MODEL_LOADING, detail=str(e)) from None
            merged = {**ref.mode_param, **data}
            self.unit.model_path = cat.prepare(ref)  # type: ignore[attr-defined]
            self.unit.model_info = ref.descriptor  # type: ignore[attr-defined]
        self.params: UnitParams = unit_cls.Params.model_validate(merged)
        self.input = InputAssembler(unit_cls.kind, unit_cls.inputs.values(), unit_cls.streams_input())
        self._chunks = ChunkShaper()
        self.out_index = 0  # of the next output stream chunk (emberflow.testing numbers them)
        self.unit.setup(self.params)

    # --- typed values in, output values out -------------------------------------------------------
    def outs(self, data: Any) -> list[Out]:
        """The messages one inference of `data` (a typed value) produces, as the host sends them."""
        result = collect(self.unit.infer(self.input.fit(data)))
        return list(shape(result, stream=self.params.streams_output, per_call=self.unit.stream_per_call))

    def infer(self, data: Any) -> list[Any]:
        """The output values of one inference: each chunk's delta in a stream format (without the
        bare end marker), or the one whole answer."""
        return _values(self.outs(data))

    def infer_text(self, data: Any) -> str:
        return "".join(str(p) for p in self.infer(data))

    def session(self, pieces: Iterable[Any]) -> list[list[Any]]:
        """A streamed input, piece by piece: the output values after each piece. Units without
        `on_chunk` get the pieces joined into one `infer` at the end, as the host does."""
        pieces = list(pieces)
        if not self.unit_cls.streams_input():
            return [[] for _ in pieces[1:]] + [self.infer(join_pieces(pieces, "session"))]
        steps = []
        for i, piece in enumerate(pieces):
            chunk = Chunk(self.input.fit(piece), i, i == len(pieces) - 1)
            outs = self._chunks.shape(chunk, collect(self.unit.on_chunk(chunk)), stream=self.params.streams_output)
            steps.append(_values(list(outs)))
        return steps

    # --- StackFlow messages in ---------------------------------------------------------------------
    def inference(self, object: str, data: Any, payload: bytes | None = None) -> list[Out]:
        """One StackFlow inference message (base64 text, RAW bytes, a `{"delta", "index",
        "finish"}` chunk), decoded and checked as the host does (StackFlowError on bad input)."""
        value = self.input.feed(object, data, payload)
        if value is INCOMPLETE:
            return []
        stream = self.params.streams_output
        if isinstance(value, Chunk):
            return list(self._chunks.shape(value, collect(self.unit.on_chunk(value)), stream=stream))
        return list(shape(collect(self.unit.infer(value)), stream=stream, per_call=self.unit.stream_per_call))

    # --- resources and lifecycle -------------------------------------------------------------------
    def load_resource(self, res_id: str, data: Any) -> None:
        self.resources[res_id] = self.unit_cls.load_resource(res_id, data)

    def unload_resource(self, res_id: str) -> None:
        self.unit_cls.unload_resource(res_id, self.resources.pop(res_id))

    def close(self) -> None:
        self.unit.teardown()

    def __enter__(self) -> LocalTask:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _values(outs: list[Out]) -> list[Any]:
    return [out.value for out in outs if not out.is_bare_end]
