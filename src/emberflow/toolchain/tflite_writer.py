"""Write .tflite flatbuffers with the schema that ships in the tflite-micro wheel (no TensorFlow).

A minimal builder: add tensors (optionally with constant data and quantization) and operators,
then `build()` returns the file bytes. Used by `emberflow export-tflite` and the benchmarks.
"""

from __future__ import annotations

import flatbuffers
import numpy as np

from emberflow.toolchain.graph import tflite_schema

S = tflite_schema()

TFL_TYPES = {
    "float32": S.TensorType.FLOAT32,
    "int8": S.TensorType.INT8,
    "uint8": S.TensorType.UINT8,
    "int16": S.TensorType.INT16,
    "int32": S.TensorType.INT32,
    "int64": S.TensorType.INT64,
}


class TfliteBuilder:
    def __init__(self) -> None:
        self.tensors: list = []
        self.buffers = [S.BufferT()]  # buffer 0 is the conventional empty buffer
        self.ops: list = []
        self.codes: dict[int, int] = {}

    @staticmethod
    def quantization(scale, zero_point, axis: int = 0):
        q = S.QuantizationParametersT()
        q.scale = [float(v) for v in np.atleast_1d(scale)]
        q.zeroPoint = [int(v) for v in np.atleast_1d(zero_point)]
        q.quantizedDimension = axis
        return q

    def tensor(
        self, name: str, shape, dtype: int, data: np.ndarray | None = None, scale=None, zero_point=0, axis: int = 0
    ) -> int:
        """Add a tensor; `data` makes it a constant, `scale` gives it quantization parameters."""
        t = S.TensorT()
        t.name, t.shape, t.type, t.buffer = name, [int(d) for d in shape], dtype, 0
        if data is not None:
            b = S.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            t.quantization = self.quantization(scale, zero_point, axis)
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code: int, inputs, outputs, options_type: int = 0, options=None) -> None:
        if code not in self.codes:
            self.codes[code] = len(self.codes)
        o = S.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes[code], [int(i) for i in inputs], [int(i) for i in outputs]
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.ops.append(o)

    def build(self, inputs, outputs, description: str = "emberflow") -> bytes:
        sg = S.SubGraphT()
        sg.tensors, sg.inputs, sg.outputs, sg.operators, sg.name = (
            self.tensors,
            list(inputs),
            list(outputs),
            self.ops,
            "main",
        )
        m = S.ModelT()
        m.version, m.subgraphs, m.buffers, m.description = 3, [sg], self.buffers, description
        codes = []
        for code, _ in sorted(self.codes.items(), key=lambda kv: kv[1]):
            c = S.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            codes.append(c)
        m.operatorCodes = codes
        fb = flatbuffers.Builder(1024)
        fb.Finish(m.Pack(fb), file_identifier=b"TFL3")
        return bytes(fb.Output())
