"""Run a unit in-process, without sys or ZeroMQ: for unit tests and quick experiments.

    with LocalTask(LLMUnit, {"model": "smollm2-135m-instruct"}) as task:
        print(task.infer_text("What is the capital of France?"))

Parameters are validated exactly as a `setup` over the protocol would validate them, and the
model is resolved through the same catalogue.
"""

from __future__ import annotations

from typing import Any, Iterable

from emberflow.models.catalogue import Catalogue
from emberflow.unit.base import Chunk, TaskContext, Unit, UnitParams, collect


class LocalTask:
    def __init__(self, unit_cls: type[Unit], params: dict[str, Any] | None = None, work_id: str | None = None):
        data = dict(params or {})
        self.emitted: list[tuple[str, Any, bytes]] = []
        self.unit = unit_cls()
        self.resources: dict[str, Any] = {}  # loaded with load_resource(), as the unit process keeps them
        self.unit.context = TaskContext(work_id or f"{unit_cls.kind}.0",
                                        emit=lambda o, d, p, s=False, c=True: self.emitted.append((o, d, p)),
                                        resources=self.resources)
        merged = data
        if unit_cls.needs_model and data.get("model"):
            cat = Catalogue()
            ref = cat.resolve(data["model"])
            merged = {**ref.mode_param, **data}
            self.unit.model_path = cat.weights_path(ref.descriptor)  # type: ignore[attr-defined]
            self.unit.model_info = ref.descriptor  # type: ignore[attr-defined]
        self.params: UnitParams = unit_cls.Params.model_validate(merged)
        self.unit.setup(self.params)

    def infer(self, data: Any) -> list[Any]:
        """All output pieces of one inference."""
        return list(collect(self.unit.infer(data)))

    def infer_text(self, data: Any) -> str:
        return "".join(str(p) for p in self.infer(data))

    def session(self, pieces: Iterable[Any]) -> list[list[Any]]:
        """A streamed input, piece by piece: the outputs after each piece. Units without
        `on_chunk` get the pieces joined into one `infer` at the end, as the host does."""
        pieces = list(pieces)
        if not type(self.unit).streams_input():
            joined: Any = b"".join(pieces) if all(isinstance(p, bytes) for p in pieces) else "".join(pieces)
            return [[] for _ in pieces[1:]] + [self.infer(joined)]
        return [list(collect(self.unit.on_chunk(Chunk(p, i, i == len(pieces) - 1)))) for i, p in enumerate(pieces)]

    def load_resource(self, res_id: str, data: Any) -> None:
        self.resources[res_id] = type(self.unit).load_resource(res_id, data)

    def unload_resource(self, res_id: str) -> None:
        type(self.unit).unload_resource(res_id, self.resources.pop(res_id))

    def close(self) -> None:
        self.unit.teardown()

    def __enter__(self) -> "LocalTask":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
