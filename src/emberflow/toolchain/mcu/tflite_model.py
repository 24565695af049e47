"""A `.tflite` file as the MCU compiler needs it: every subgraph, constant data and operator options.

`toolchain/graph.py` keeps only shapes and sizes of the main graph; code generation also needs
the weights, quantization per axis, builtin options and the init subgraph of streaming
models, so this reads the flatbuffer once more through the same schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emberflow.runtime.tflite_format import TFL_DTYPES, ModelError, read_tflite_model, tflite_op_types


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)
    quant_axis: int = 0
    data: np.ndarray | None = None  # constant contents, in `shape` and `dtype`

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def itemsize(self) -> int:
        return 0 if self.dtype in ("resource", "variant", "string") else np.dtype(self.dtype).itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def zp(self) -> int:
        return int(self.zero_point[0]) if self.zero_point else 0

    @property
    def sc(self) -> float:
        return float(self.scale[0]) if self.scale else 0.0


@dataclass
class Op:
    index: int
    op_type: str
    inputs: list[int]  # -1: an omitted optional input
    outputs: list[int]
    options: dict[str, object]  # the builtin options table, by the schema's field names

    @property
    def name(self) -> str:
        return f"{self.op_type.lower()}_{self.index}"

    def _option(self, key: str, default: object) -> object:
        value = self.options.get(key, default)
        if value is None:
            raise ModelError(f"{self.op_type} {self.name}: option {key} is missing")
        return value

    def int_opt(self, key: str, default: int | None = None) -> int:
        """An integer (or boolean, or enum) option; `default` when the op has none."""
        value = self._option(key, default)
        if not isinstance(value, int):
            raise ModelError(f"{self.op_type} {self.name}: option {key} is {value!r}")
        return int(value)

    def float_opt(self, key: str, default: float | None = None) -> float:
        value = self._option(key, default)
        if not isinstance(value, int | float):
            raise ModelError(f"{self.op_type} {self.name}: option {key} is {value!r}")
        return float(value)

    def str_opt(self, key: str, default: str = "") -> str:
        value = self._option(key, default)
        return value if isinstance(value, str) else str(value)


@dataclass
class Subgraph:
    name: str
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]


@dataclass
class TfliteModel:
    path: str
    subgraphs: list[Subgraph]

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]


def _options(op: Any) -> dict[str, object]:
    opt = op.builtinOptions
    if opt is None:
        return {}
    out: dict[str, object] = {}
    for key, value in vars(opt).items():
        out[key] = value.decode() if isinstance(value, bytes) else value
    return out


def load_tflite(path: str | Path) -> TfliteModel:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    buf = path.read_bytes()
    try:
        model = read_tflite_model(buf)
    except ModelError as exc:
        raise ModelError(f"{path.name}: {exc}") from None
    except Exception as exc:
        raise ModelError(f"{path.name}: corrupt .tflite file ({type(exc).__name__}: {exc})") from None
    try:
        op_types = tflite_op_types(model)
        return TfliteModel(str(path), [_subgraph(model, sg, op_types) for sg in model.subgraphs or []])
    except (IndexError, ValueError, TypeError, AttributeError) as exc:
        raise ModelError(f"{path.name}: corrupt .tflite file ({type(exc).__name__}: {exc})") from None


def _subgraph(model: Any, sg: Any, op_types: list[str]) -> Subgraph:
    tensors = []
    for i, t in enumerate(sg.tensors or []):
        name = (t.name.decode() if isinstance(t.name, bytes) else t.name) or f"t{i}"
        dtype = TFL_DTYPES.get(t.type, "unknown")
        shape = tuple(int(d) for d in t.shape) if t.shape is not None else ()
        tensor = Tensor(i, name, shape, dtype)
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale):
            tensor.scale = [float(s) for s in q.scale]
            tensor.zero_point = [int(z) for z in q.zeroPoint] if q.zeroPoint is not None else [0] * len(q.scale)
            tensor.quant_axis = int(q.quantizedDimension)
        buffer = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        if (
            buffer is not None
            and buffer.data is not None
            and len(buffer.data)
            and dtype not in ("resource", "string", "unknown")
        ):
            raw = np.asarray(buffer.data, dtype=np.uint8).tobytes()
            tensor.data = np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
        tensors.append(tensor)
    ops = []
    for i, op in enumerate(sg.operators or []):
        ins = [int(j) for j in (op.inputs if op.inputs is not None else [])]
        outs = [int(j) for j in (op.outputs if op.outputs is not None else [])]
        ops.append(Op(i, op_types[op.opcodeIndex], ins, outs, _options(op)))
    name = sg.name.decode() if isinstance(sg.name, bytes) else (sg.name or "")
    inputs = [int(j) for j in (sg.inputs if sg.inputs is not None else [])]
    outputs = [int(j) for j in (sg.outputs if sg.outputs is not None else [])]
    return Subgraph(name, tensors, ops, inputs, outputs)
