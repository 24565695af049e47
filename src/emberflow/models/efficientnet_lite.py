"""EfficientNet-Lite0 as an ONNX graph, built from its PyTorch state dict (no torch needed).

The checkpoint holds weights only, so the architecture comes from the table below (the Lite
variant of EfficientNet-B0: no squeeze-excitation, ReLU6 instead of Swish, TF "SAME" padding,
the stem and head kept at 32 and 1280 channels). Every block is checked against the shapes in
the state dict, so a different checkpoint fails loudly instead of computing nonsense. Batch
norms are folded into the convolutions before them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BN_EPS = 1e-3
# (repeats, kernel, stride of the first block, expand ratio, output channels) per stage
LITE0_STAGES = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]
IMAGE_SIZE = 224


class _Builder:
    def __init__(self, sd: dict[str, np.ndarray]):
        self.sd = sd
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.n = 0

    def weight(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        if key not in self.sd:
            raise ValueError(f"the checkpoint has no {key!r}: not an EfficientNet-Lite0 state dict")
        w = self.sd[key]
        if shape is not None and tuple(w.shape) != shape:
            raise ValueError(f"{key} has shape {tuple(w.shape)}, EfficientNet-Lite0 needs {shape}")
        return w

    def init(self, array: np.ndarray, name: str) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        from onnx import helper

        self.n += 1
        out = f"{name}/{op}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{name}#{self.n}", **attrs))
        return out

    def conv_bn(
        self, x: str, conv: str, bn: str, cout: int, cin: int, k: int, stride: int, groups: int = 1, relu6: bool = True
    ) -> str:
        w = self.weight(f"{conv}.weight", (cout, cin // groups, k, k))
        gamma, beta = self.weight(f"{bn}.weight", (cout,)), self.weight(f"{bn}.bias", (cout,))
        mean, var = self.weight(f"{bn}.running_mean", (cout,)), self.weight(f"{bn}.running_var", (cout,))
        scale = gamma / np.sqrt(var + BN_EPS)
        y = self.node(
            "Conv",
            [x, self.init(w * scale[:, None, None, None], f"{conv}.W"), self.init(beta - mean * scale, f"{conv}.B")],
            conv,
            kernel_shape=[k, k],
            strides=[stride, stride],
            group=groups,
            auto_pad="SAME_UPPER",
        )
        if relu6:
            y = self.node("Clip", [y, "zero", "six"], conv)
        return y


def build_lite0(sd: dict[str, np.ndarray]) -> Any:
    """The ONNX model: input `input` [1, 3, 224, 224] (RGB, (x - 127.5) / 127.5), output `logits` [1, 1000]."""
    from onnx import TensorProto, helper, numpy_helper

    b = _Builder(sd)
    b.inits += [
        numpy_helper.from_array(np.array(0, np.float32), "zero"),
        numpy_helper.from_array(np.array(6, np.float32), "six"),
    ]
    x = b.conv_bn("input", "_conv_stem", "_bn0", 32, 3, 3, 2)
    cin, block = 32, 0
    for repeats, k, stride, expand, cout in LITE0_STAGES:
        for r in range(repeats):
            name = f"_blocks.{block}"
            inp, mid = x, cin * expand
            if expand != 1:
                x = b.conv_bn(x, f"{name}._expand_conv", f"{name}._bn0", mid, cin, 1, 1)
            x = b.conv_bn(
                x, f"{name}._depthwise_conv", f"{name}._bn1", mid, mid, k, stride if r == 0 else 1, groups=mid
            )
            x = b.conv_bn(x, f"{name}._project_conv", f"{name}._bn2", cout, mid, 1, 1, relu6=False)
            if (stride if r == 0 else 1) == 1 and cin == cout:
                x = b.node("Add", [x, inp], name)  # identity skip (drop-connect is training only)
            cin, block = cout, block + 1
    if any(key.startswith(f"_blocks.{block}.") for key in sd):
        raise ValueError(f"the checkpoint has more than {block} blocks: not EfficientNet-Lite0")
    x = b.conv_bn(x, "_conv_head", "_bn1", 1280, cin, 1, 1)
    x = b.node("GlobalAveragePool", [x], "pool")
    x = b.node("Flatten", [x], "pool", axis=1)
    fc_w, fc_b = b.weight("_fc.weight", (1000, 1280)), b.weight("_fc.bias", (1000,))
    logits = b.node("Gemm", [x, b.init(fc_w, "_fc.W"), b.init(fc_b, "_fc.B")], "_fc", transB=1)
    b.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="logits#out"))
    graph = helper.make_graph(
        b.nodes,
        "efficientnet-lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])],
        b.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="emberflow models install (EfficientNet-Lite0 from .pth)",
    )
    model.ir_version = 8
    return model
