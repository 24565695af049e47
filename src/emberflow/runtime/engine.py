"""Engine: run an .onnx, .tflite or .ember model with one small API.

    engine = Engine("model.ember")             # backend chosen by model format
    outputs = engine([x])                      # or engine({"x": x}) -> list of numpy arrays
    engine.graphs["rec"].stages[1].inputs      # multi-net / multi-stage bundles
    engine.run({"x": x}, graph="rec", stage=1) # stage=None picks the stage whose shapes match

Inputs are checked against the model (names, dtypes, shapes) before the backend sees them, so
errors say which input is wrong and how to fix it. Arrays are passed on without copying when
they are already C-contiguous and of the right dtype.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emberflow.errors import EmberflowError
from emberflow.runtime.backends import Backend, TensorSpec, backend_for

MODEL_SUFFIXES = {".onnx": "onnx", ".tflite": "tflite"}


class EngineError(EmberflowError, ValueError):
    """Bad model file or bad inputs; the message says what to change."""


@dataclass
class StageInfo:
    index: int
    format: str
    backend: Backend = field(repr=False)

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.backend.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.backend.outputs


@dataclass
class GraphInfo:
    name: str
    stages: list[StageInfo]

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.stages[0].inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.stages[0].outputs


class Engine:
    def __init__(
        self,
        path: str | Path,
        backend: str | None = None,
        device: str | None = None,
        *,
        check_inputs: bool = True,
        **options,
    ) -> None:
        """`options` go to the backend (e.g. threads=2 for onnxruntime, arena_size= for TFLM).

        `check_inputs=False` skips the name/dtype/shape checks on the single-graph call path
        (a few µs per call, which matters only for sub-millisecond models in tight loops);
        wrong inputs then fail inside the backend with its own message.
        """
        path = Path(path)
        if not path.is_file():
            raise EngineError(f"model file not found: {path}")
        self.path = str(path)
        self.manifest: dict | None = None
        suffix = path.suffix.lower()
        if suffix in MODEL_SUFFIXES:
            fmt = MODEL_SUFFIXES[suffix]
            stage = StageInfo(0, fmt, self._make_backend(path.read_bytes(), fmt, backend, device, options))
            self.graphs: dict[str, GraphInfo] = {path.stem: GraphInfo(path.stem, [stage])}
        elif suffix == ".ember":
            from emberflow.runtime.bundle import BundleError, read_bundle

            try:
                bundle = read_bundle(path)
            except BundleError as exc:
                raise EngineError(str(exc)) from exc
            self.manifest = bundle.manifest
            self.graphs = {}
            for g in bundle.manifest["graphs"]:
                stages = []
                for s in g["stages"]:
                    model = bundle.section(s["section"])
                    if s.get("shared_weights"):  # weights stored once for all stages of this net
                        from emberflow.runtime.backends.onnx import with_shared_weights

                        model = with_shared_weights(model, bundle.section(s["shared_weights"]))
                    stages.append(
                        StageInfo(
                            s["index"], s["format"], self._make_backend(model, s["format"], backend, device, options)
                        )
                    )
                self.graphs[g["name"]] = GraphInfo(g["name"], stages)
        else:
            raise EngineError(
                f"{path.name}: unknown model file type {suffix!r}; the Engine runs .onnx, .tflite and .ember files"
            )
        self.default_graph = next(iter(self.graphs))
        first = self.graphs[self.default_graph]
        # The common case (one graph, one stage) skips graph/stage lookup on every call.
        self._only = first.stages[0] if len(self.graphs) == 1 and len(first.stages) == 1 else None
        self._check = check_inputs

    @staticmethod
    def _make_backend(model: bytes, fmt: str, name: str | None, device: str | None, options: dict) -> Backend:
        try:
            cls = backend_for(fmt, name)
        except ValueError as exc:
            raise EngineError(str(exc)) from exc
        try:
            return cls(model, device, **options)
        except EngineError:
            raise
        except Exception as exc:  # the runtime's own message, with which backend said it
            raise EngineError(f"{cls.name} could not load the {fmt} model: {str(exc).strip()[:400]}") from exc

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.graphs[self.default_graph].inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.graphs[self.default_graph].outputs

    def __call__(self, inputs, graph: str | None = None, stage: int | None = None) -> list[np.ndarray]:
        only = self._only
        if only is not None and graph is None and stage is None:
            backend = only.backend
            if self._check:
                feeds = self._feeds(backend.inputs, inputs)
            else:
                feeds = [inputs[s.name] for s in backend.inputs] if type(inputs) is dict else inputs
            try:
                return backend.run(feeds)
            except Exception as exc:  # no cost unless raised; say which runtime failed and on what
                raise self._run_error(backend, exc) from exc
        return self.run(inputs, graph=graph, stage=stage)

    @staticmethod
    def _run_error(backend: Backend, exc: Exception) -> EngineError:
        first = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else type(exc).__name__
        return EngineError(
            f"{backend.name} failed while running the model: {first}. The inputs have the right names, dtypes and "
            "ranks; check their values and dynamic sizes (e.g. token ids within the vocabulary, a valid sample rate)"
        )

    def run(self, inputs, graph: str | None = None, stage: int | None = None) -> list[np.ndarray]:
        info = self.graphs[self.default_graph] if graph is None else self._graph(graph)
        if stage is None:
            stages = info.stages
            chosen = stages[0] if len(stages) == 1 else self._match_stage(info, inputs)
        else:
            if not 0 <= stage < len(info.stages):
                raise EngineError(f"graph {info.name!r} has stages 0..{len(info.stages) - 1}, not {stage}")
            chosen = info.stages[stage]
        feeds = self._feeds(chosen.inputs, inputs)
        try:
            return chosen.backend.run(feeds)
        except Exception as exc:
            raise self._run_error(chosen.backend, exc) from exc

    def _graph(self, name: str | None) -> GraphInfo:
        if name is None:
            return self.graphs[self.default_graph]
        try:
            return self.graphs[name]
        except KeyError:
            raise EngineError(f"no graph {name!r} in {self.path}; graphs: {', '.join(self.graphs)}") from None

    def _match_stage(self, info: GraphInfo, inputs) -> StageInfo:
        for s in info.stages:
            try:
                self._feeds(s.inputs, inputs)
                return s
            except EngineError:
                continue
        shapes = "; ".join(f"stage {s.index}: " + ", ".join(t.describe() for t in s.inputs) for s in info.stages)
        raise EngineError(f"the inputs match no stage of graph {info.name!r} ({shapes})")

    @staticmethod
    def _feeds(specs: list[TensorSpec], inputs) -> list[np.ndarray]:
        # Hot path: runs on every call, so plain loops and exact type checks (the overhead
        # budget is a few µs; ABC isinstance checks and generators cost more than that).
        kind = type(inputs)
        if kind is np.ndarray:
            arrays = [inputs]
        elif kind is dict or (kind is not list and kind is not tuple and isinstance(inputs, Mapping)):
            if len(inputs) != len(specs):
                Engine._name_error(specs, inputs)
            try:
                arrays = [inputs[s.name] for s in specs]
            except KeyError:
                Engine._name_error(specs, inputs)
        elif kind is list or kind is tuple or isinstance(inputs, Sequence):
            arrays = list(inputs)
        else:
            raise EngineError(f"inputs must be an array, a list of arrays or a dict name -> array, not {kind.__name__}")
        if len(arrays) != len(specs):
            raise EngineError(
                f"got {len(arrays)} input array(s), the model needs {len(specs)}: "
                + ", ".join(s.describe() for s in specs)
            )
        ndarray = np.ndarray
        for i, spec in enumerate(specs):
            a = arrays[i]
            if type(a) is not ndarray:
                a = arrays[i] = np.asarray(a, dtype=spec.dtype)
            if a.dtype is not spec.dtype and a.dtype != spec.dtype:
                raise EngineError(
                    f"input {spec.name}: dtype {a.dtype}, the model expects {spec.dtype}; convert with "
                    f".astype(np.{spec.dtype.name})"
                )
            shape = a.shape
            want = spec.shape
            if shape != want:  # equal tuples is the common case; otherwise check dim by dim (None = any)
                if len(shape) != len(want):
                    raise EngineError(f"input {spec.name}: shape {shape}, the model expects {spec.describe()}")
                for w, g in zip(want, shape):
                    if w is not None and w != g:
                        raise EngineError(f"input {spec.name}: shape {shape}, the model expects {spec.describe()}")
            if not a.flags.c_contiguous:
                arrays[i] = np.ascontiguousarray(a)
        return arrays

    @staticmethod
    def _name_error(specs: list[TensorSpec], inputs) -> None:
        missing = [s.name for s in specs if s.name not in inputs]
        if missing:
            raise EngineError(
                f"missing input(s) {', '.join(missing)}; the model needs " + ", ".join(s.describe() for s in specs)
            )
        extra = sorted(set(inputs) - {s.name for s in specs})
        raise EngineError(
            f"unknown input(s) {', '.join(extra)}; the model's inputs are {', '.join(s.name for s in specs)}"
        )

    def __repr__(self) -> str:
        parts = [f"{g.name}[{len(g.stages)} stage(s), {g.stages[0].backend.name}]" for g in self.graphs.values()]
        return f"Engine({self.path!r}: {', '.join(parts)})"
