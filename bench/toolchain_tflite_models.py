"""Int8 .tflite models for the memory-planner benchmark, written with the schema that ships in tflite-micro.

`resnet_int8()` is a small residual CNN (skip connections: the input of each block stays alive
until the ADD at its end), `plain_cnn_int8()` the same depth without skips. Weights are random:
memory planning depends on shapes and lifetimes only, not on values. Not a converter; only the
few ops these two graphs use.
"""

from __future__ import annotations

import numpy as np

from emberflow.toolchain.tflite_writer import S, TfliteBuilder

ACT_SCALE = 0.05


class ResnetBuilder(TfliteBuilder):
    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.rng = np.random.default_rng(seed)

    def act(self, name, shape) -> int:
        return self.tensor(name, shape, S.TensorType.INT8, scale=ACT_SCALE)

    def conv(self, name, x: int, cin: int, cout: int, hw: int, stride: int = 1, relu: bool = True) -> int:
        w_scale = np.full(cout, 0.01)
        w = self.rng.integers(-127, 128, (cout, 3, 3, cin), dtype=np.int8)
        bias = self.rng.integers(-1000, 1000, cout, dtype=np.int32)
        wt = self.tensor(f"{name}/w", w.shape, S.TensorType.INT8, w, w_scale, np.zeros(cout, int), 0)
        bt = self.tensor(f"{name}/b", bias.shape, S.TensorType.INT32, bias, w_scale * ACT_SCALE, np.zeros(cout, int), 0)
        out_hw = hw // stride
        y = self.act(name, (1, out_hw, out_hw, cout))
        opt = S.Conv2DOptionsT()
        opt.padding, opt.strideW, opt.strideH = S.Padding.SAME, stride, stride
        opt.dilationWFactor = opt.dilationHFactor = 1
        opt.fusedActivationFunction = S.ActivationFunctionType.RELU if relu else S.ActivationFunctionType.NONE
        self.op(S.BuiltinOperator.CONV_2D, [x, wt, bt], [y], S.BuiltinOptions.Conv2DOptions, opt)
        return y

    def add(self, name, a: int, b: int, shape) -> int:
        y = self.act(name, shape)
        opt = S.AddOptionsT()
        opt.fusedActivationFunction = S.ActivationFunctionType.RELU
        self.op(S.BuiltinOperator.ADD, [a, b], [y], S.BuiltinOptions.AddOptions, opt)
        return y

    def head(self, x: int, hw: int, c: int, classes: int = 10) -> int:
        pooled = self.act("gap", (1, 1, 1, c))
        opt = S.Pool2DOptionsT()
        opt.padding, opt.strideW, opt.strideH, opt.filterWidth, opt.filterHeight = S.Padding.VALID, 1, 1, hw, hw
        self.op(S.BuiltinOperator.AVERAGE_POOL_2D, [x], [pooled], S.BuiltinOptions.Pool2DOptions, opt)
        flat = self.act("flat", (1, c))
        shape = self.tensor("flat/shape", (2,), S.TensorType.INT32, np.array([1, c], np.int32))
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


def resnet_int8(skips: bool = True, hw: int = 32, width: int = 16) -> bytes:
    b = ResnetBuilder()
    x = b.act("input", (1, hw, hw, 3))
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
