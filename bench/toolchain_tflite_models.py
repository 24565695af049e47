"""Int8 .tflite models for the memory-planner benchmark, written with the schema that ships in tflite-micro.

`resnet_int8()` is a small residual CNN (skip connections: the input of each block stays alive
until the ADD at its end), `plain_cnn_int8()` the same depth without skips. Weights are random:
memory planning depends on shapes and lifetimes only, not on values. Not a converter; only the
few ops these two graphs use.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S

ACT_SCALE = 0.05


class TfliteBuilder:
    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.tensors: list = []
        self.buffers = [S.BufferT()]  # buffer 0 is the conventional empty buffer
        self.ops: list = []
        self.codes: dict[int, int] = {}

    def _quant(self, scale, zero_point, axis: int = 0):
        q = S.QuantizationParametersT()
        q.scale = list(np.atleast_1d(scale).astype(float))
        q.zeroPoint = list(np.atleast_1d(zero_point).astype(int))
        q.quantizedDimension = axis
        return q

    def tensor(self, name, shape, dtype, data: np.ndarray | None = None, scale=ACT_SCALE, zero_point=0, axis=0) -> int:
        t = S.TensorT()
        t.name, t.shape, t.type = name, list(shape), dtype
        t.buffer = 0
        if data is not None:
            b = S.BufferT()
            b.data = list(np.ascontiguousarray(data).tobytes())
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            t.quantization = self._quant(scale, zero_point, axis)
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code: int, inputs, outputs, options_type=0, options=None) -> None:
        if code not in self.codes:
            self.codes[code] = len(self.codes)
        o = S.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes[code], list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.ops.append(o)

    def conv(self, name, x: int, cin: int, cout: int, hw: int, stride: int = 1, relu: bool = True) -> int:
        w_scale = np.full(cout, 0.01)
        w = self.rng.integers(-127, 128, (cout, 3, 3, cin), dtype=np.int8)
        bias = self.rng.integers(-1000, 1000, cout, dtype=np.int32)
        wt = self.tensor(f"{name}/w", w.shape, S.TensorType.INT8, w, w_scale, np.zeros(cout, int), 0)
        bt = self.tensor(f"{name}/b", bias.shape, S.TensorType.INT32, bias, w_scale * ACT_SCALE, np.zeros(cout, int), 0)
        out_hw = hw // stride
        y = self.tensor(name, (1, out_hw, out_hw, cout), S.TensorType.INT8)
        opt = S.Conv2DOptionsT()
        opt.padding, opt.strideW, opt.strideH = S.Padding.SAME, stride, stride
        opt.dilationWFactor = opt.dilationHFactor = 1
        opt.fusedActivationFunction = S.ActivationFunctionType.RELU if relu else S.ActivationFunctionType.NONE
        self.op(S.BuiltinOperator.CONV_2D, [x, wt, bt], [y], S.BuiltinOptions.Conv2DOptions, opt)
        return y

    def add(self, name, a: int, b: int, shape) -> int:
        y = self.tensor(name, shape, S.TensorType.INT8)
        opt = S.AddOptionsT()
        opt.fusedActivationFunction = S.ActivationFunctionType.RELU
        self.op(S.BuiltinOperator.ADD, [a, b], [y], S.BuiltinOptions.AddOptions, opt)
        return y

    def head(self, x: int, hw: int, c: int, classes: int = 10) -> int:
        pooled = self.tensor("gap", (1, 1, 1, c), S.TensorType.INT8)
        opt = S.Pool2DOptionsT()
        opt.padding, opt.strideW, opt.strideH, opt.filterWidth, opt.filterHeight = S.Padding.VALID, 1, 1, hw, hw
        self.op(S.BuiltinOperator.AVERAGE_POOL_2D, [x], [pooled], S.BuiltinOptions.Pool2DOptions, opt)
        flat = self.tensor("flat", (1, c), S.TensorType.INT8)
        shape = self.tensor("flat/shape", (2,), S.TensorType.INT32, np.array([1, c], np.int32), scale=None)
        ropt = S.ReshapeOptionsT()
        ropt.newShape = [1, c]
        self.op(S.BuiltinOperator.RESHAPE, [pooled, shape], [flat], S.BuiltinOptions.ReshapeOptions, ropt)
        w = self.rng.integers(-127, 128, (classes, c), dtype=np.int8)
        wt = self.tensor("fc/w", w.shape, S.TensorType.INT8, w, 0.01, 0)
        bt = self.tensor("fc/b", (classes,), S.TensorType.INT32, np.zeros(classes, np.int32), 0.01 * ACT_SCALE, 0)
        y = self.tensor("logits", (1, classes), S.TensorType.INT8, scale=0.1)
        fopt = S.FullyConnectedOptionsT()
        self.op(S.BuiltinOperator.FULLY_CONNECTED, [flat, wt, bt], [y], S.BuiltinOptions.FullyConnectedOptions, fopt)
        return y

    def build(self, inputs, outputs) -> bytes:
        sg = S.SubGraphT()
        sg.tensors, sg.inputs, sg.outputs, sg.operators, sg.name = self.tensors, list(inputs), list(outputs), self.ops, "main"
        m = S.ModelT()
        m.version, m.subgraphs, m.buffers, m.description = 3, [sg], self.buffers, "emberflow bench model"
        codes = []
        for code, _ in sorted(self.codes.items(), key=lambda kv: kv[1]):
            c = S.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            codes.append(c)
        m.operatorCodes = codes
        fb = flatbuffers.Builder(1024)
        fb.Finish(m.Pack(fb), file_identifier=b"TFL3")
        return bytes(fb.Output())


def resnet_int8(skips: bool = True, hw: int = 32, width: int = 16) -> bytes:
    b = TfliteBuilder()
    x = b.tensor("input", (1, hw, hw, 3), S.TensorType.INT8)
    h = b.conv("stem", x, 3, width, hw, stride=2)
    size = hw // 2
    for i in range(2):
        a = b.conv(f"block{i}/a", h, width, width, size)
        c = b.conv(f"block{i}/b", a, width, width, size, relu=not skips)
        h = b.add(f"block{i}/add", h, c, (1, size, size, width)) if skips else c
    h = b.conv("down", h, width, 2 * width, size, stride=2)
    size //= 2
    a = b.conv("block2/a", h, 2 * width, 2 * width, size)
    c = b.conv("block2/b", a, 2 * width, 2 * width, size, relu=not skips)
    h = b.add("block2/add", h, c, (1, size, size, 2 * width)) if skips else c
    y = b.head(h, size, 2 * width)
    return b.build([x], [y])


def plain_cnn_int8() -> bytes:
    return resnet_int8(skips=False)
