"""TensorFlow ops of TF.js graph models, written as ONNX (handlers) and as numpy (constant folds).

The set covers what the packaged vision models use (NanoDet, MoveNet, BlazeFace and similar
MobileNet-style graphs): fused and depthwise convolutions with bias and activation, pooling,
resize, pad, concat/split/pack, reshape-like ops, elementwise math, reductions, gathers.
Semantics follow TF.js (the numeric reference the conversion is checked against).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emberflow.toolchain.tfjs_convert import (
    NHWC_FROM_NCHW,
    Converter,
    Val,
    compose,
    fold,
    op,
)
from emberflow.toolchain.tfjs_model import TfjsError, TfNode


def _const(node: TfNode, v: Val, what: str) -> np.ndarray:
    if not v.is_const:
        raise TfjsError(f"node {node.name!r} ({node.op}): {what} must be a constant in this converter")
    assert v.const is not None
    return v.const


def _axis(value: np.ndarray | int, rank: int | None) -> int:
    a = int(np.asarray(value).reshape(-1)[0]) if not isinstance(value, int) else value
    return a + rank if a < 0 and rank is not None else a


def _onnx_type(dtype: Any) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


# --- passthrough --------------------------------------------------------------------------------
@op("Identity", "StopGradient", "Snapshot", "IdentityN")
def identity(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    return list(args)


@fold("Identity", "StopGradient", "Snapshot", "IdentityN")
def identity_fold(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    return list(xs)


# --- convolutions -------------------------------------------------------------------------------
def _activation(cv: Converter, node: TfNode, y: str, name: str | None, extra: list[Val], nhwc: bool) -> str:
    if name is None:
        return y
    if name == "relu":
        return cv.emit1("Relu", [y], node.name)
    if name == "relu6":
        return cv.emit1(
            "Clip", [y, cv.constant(np.array(0, np.float32)), cv.constant(np.array(6, np.float32))], node.name
        )
    if name == "elu":
        return cv.emit1("Elu", [y], node.name)
    if name == "sigmoid":
        return cv.emit1("Sigmoid", [y], node.name)
    if name == "leakyrelu":
        return cv.emit1("LeakyRelu", [y], node.name, alpha=node.attr_float("leakyrelu_alpha", 0.2))
    if name == "prelu":
        alpha = _const(node, extra[1], "the PReLU alpha")
        slope = cv.const_like(alpha, NHWC_FROM_NCHW if nhwc else None, node.name)
        if slope is None:
            raise TfjsError(f"node {node.name!r}: PReLU alpha of shape {alpha.shape} does not broadcast")
        return cv.emit1("PRelu", [y, slope], node.name)
    raise TfjsError(f"node {node.name!r} ({node.op}): fused activation {name!r} is not supported")


def _conv(cv: Converter, node: TfNode, args: list[Val], depthwise: bool) -> list[Val]:
    fmt = node.attr_str("data_format", "NHWC")
    nhwc = fmt == "NHWC"
    spatial = (1, 2) if nhwc else (2, 3)
    kernel = _const(node, args[1], "the filter")
    kh, kw, cin, cout = kernel.shape
    if depthwise:  # [kh, kw, cin, multiplier] -> [cin * multiplier, 1, kh, kw], one group per channel
        weight, group = kernel.transpose(2, 3, 0, 1).reshape(cin * cout, 1, kh, kw), cin
    else:
        weight, group = kernel.transpose(3, 2, 0, 1), 1
    strides = node.attr_ints("strides", [1, 1, 1, 1])
    dilations = node.attr_ints("dilations", [1, 1, 1, 1])
    attrs: dict[str, Any] = {
        "kernel_shape": [kh, kw],
        "group": group,
        "strides": [strides[i] for i in spatial],
        "dilations": [dilations[i] for i in spatial],
    }
    attrs.update(_padding(node, spatial))
    x = cv.in_layout(args[0], NHWC_FROM_NCHW, node.name) if nhwc else cv.tf(args[0], node.name)
    inputs = [x, cv.constant(weight.astype(np.float32), f"{node.name}/W")]
    fused = [s.lower() for s in node.attr_strs("fused_ops")]
    extra = args[2:]
    if fused and fused[0] != "biasadd":
        raise TfjsError(
            f"node {node.name!r} ({node.op}): fused op {fused[0]!r} is not supported "
            "(TF.js supports only BiasAdd here too)"
        )
    if fused:
        inputs.append(cv.constant(_const(node, extra[0], "the bias").reshape(-1).astype(np.float32), f"{node.name}/B"))
    y = cv.emit1("Conv", inputs, node.name, **attrs)
    y = _activation(cv, node, y, fused[1] if len(fused) > 1 else None, extra, nhwc=True)
    return [Val(y, np.float32, NHWC_FROM_NCHW if nhwc else None)]


def _padding(node: TfNode, spatial: tuple[int, int]) -> dict[str, Any]:
    padding = node.attr_str("padding", "VALID")
    if padding == "SAME":
        return {"auto_pad": "SAME_UPPER"}  # TF's SAME puts the odd pixel at the end, as SAME_UPPER does
    if padding == "VALID":
        return {"pads": [0, 0, 0, 0]}
    if padding == "EXPLICIT":
        p = node.attr_ints("explicit_paddings")
        return {"pads": [p[2 * spatial[0]], p[2 * spatial[1]], p[2 * spatial[0] + 1], p[2 * spatial[1] + 1]]}
    raise TfjsError(f"node {node.name!r} ({node.op}): padding {padding!r} is not supported")


@op("Conv2D", "_FusedConv2D")
def conv2d(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    return _conv(cv, node, args, depthwise=False)


@op("DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")
def depthwise(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    return _conv(cv, node, args, depthwise=True)


@op("MaxPool", "AvgPool")
def pool(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    nhwc = node.attr_str("data_format", "NHWC") == "NHWC"
    spatial = (1, 2) if nhwc else (2, 3)
    ksize, strides = node.attr_ints("ksize"), node.attr_ints("strides")
    attrs = {
        "kernel_shape": [ksize[i] for i in spatial],
        "strides": [strides[i] for i in spatial],
        **_padding(node, spatial),
    }
    x = cv.in_layout(args[0], NHWC_FROM_NCHW, node.name) if nhwc else cv.tf(args[0], node.name)
    onnx_op = "MaxPool" if node.op == "MaxPool" else "AveragePool"  # AveragePool skips padding, as TF does
    return [Val(cv.emit1(onnx_op, [x], node.name, **attrs), args[0].dtype, NHWC_FROM_NCHW if nhwc else None)]


@op("ResizeBilinear", "ResizeNearestNeighbor")
def resize(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    size = _const(node, args[1], "the output size").astype(np.int64).reshape(2)
    x = cv.in_layout(args[0], NHWC_FROM_NCHW, node.name)
    static = cv.static_shape(args[0])  # NHWC
    if static is not None:
        sizes = cv.constant(np.array([static[0], static[3], *size], np.int64))
    else:
        n_c = cv.emit1("Shape", [x], node.name, start=0, end=2)
        sizes = cv.emit1("Concat", [n_c, cv.constant(size)], node.name, axis=0)
    align, half = node.attr_bool("align_corners"), node.attr_bool("half_pixel_centers")
    if node.op == "ResizeBilinear":
        attrs = {
            "mode": "linear",
            "coordinate_transformation_mode": "align_corners" if align else "half_pixel" if half else "asymmetric",
        }
    else:
        attrs = {
            "mode": "nearest",
            "coordinate_transformation_mode": "align_corners"
            if align
            else "tf_half_pixel_for_nn"
            if half
            else "asymmetric",
            "nearest_mode": "round_prefer_ceil" if align else "floor",
        }
    y = cv.emit1("Resize", [x, "", "", sizes], node.name, **attrs)
    return [Val(y, args[0].dtype, NHWC_FROM_NCHW)]


# --- elementwise --------------------------------------------------------------------------------
UNARY = {
    "Relu": "Relu",
    "Sigmoid": "Sigmoid",
    "Tanh": "Tanh",
    "Elu": "Elu",
    "Selu": "Selu",
    "Exp": "Exp",
    "Log": "Log",
    "Sqrt": "Sqrt",
    "Abs": "Abs",
    "Neg": "Neg",
    "Floor": "Floor",
    "Ceil": "Ceil",
    "Reciprocal": "Reciprocal",
    "Softplus": "Softplus",
    "LogicalNot": "Not",
    "Sign": "Sign",
    "Round": "Round",
}


@op(*UNARY, "Relu6", "LeakyRelu", "Rsqrt", "Square", "Cast")
def unary(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    x = args[0]
    src = cv.tf(x, node.name) if x.onnx is None else x.onnx
    name, dtype = node.name, x.dtype
    if node.op in UNARY:
        y = cv.emit1(UNARY[node.op], [src], name)
    elif node.op == "Relu6":
        y = _activation(cv, node, src, "relu6", [], nhwc=False)
    elif node.op == "LeakyRelu":
        y = cv.emit1("LeakyRelu", [src], name, alpha=node.attr_float("alpha", 0.2))
    elif node.op == "Rsqrt":
        y = cv.emit1("Reciprocal", [cv.emit1("Sqrt", [src], name)], name)
    elif node.op == "Square":
        y = cv.emit1("Mul", [src, src], name)
    else:  # Cast
        dtype = node.attr_dtype("DstT")
        y = cv.emit1("Cast", [src], name, to=_onnx_type(dtype))
    return [Val(y, dtype, x.perm)]  # elementwise: the pending layout carries over


BINARY = {
    "Add": "Add",
    "AddV2": "Add",
    "Sub": "Sub",
    "Mul": "Mul",
    "RealDiv": "Div",
    "Div": "Div",
    "Maximum": "Max",
    "Minimum": "Min",
    "Pow": "Pow",
    "Greater": "Greater",
    "Less": "Less",
    "Equal": "Equal",
    "GreaterEqual": "GreaterOrEqual",
    "LessEqual": "LessOrEqual",
    "LogicalAnd": "And",
    "LogicalOr": "Or",
}
COMPARISONS = {"Greater", "Less", "Equal", "GreaterEqual", "LessEqual", "LogicalAnd", "LogicalOr"}


def _binary_inputs(cv: Converter, node: TfNode, a: Val, b: Val) -> tuple[str, str, tuple[int, ...] | None]:
    """Both operands in one ONNX layout: the tensors' shared pending one, constants permuted to it.
    Tensors with different pending layouts (or ranks, which broadcasting allows) meet in TF's layout."""
    tensors = [v for v in (a, b) if not v.is_const]
    perm = tensors[0].perm if all(v.perm == tensors[0].perm for v in tensors) else None
    names = []
    for v in (a, b):
        if v.is_const:
            assert v.const is not None
            name = cv.const_like(v.const.astype(_result_dtype(node, a, b), copy=False), perm, node.name)
            if name is None:  # a constant of higher rank: give up the layout for this op
                return cv.tf(a, node.name), cv.tf(b, node.name), None
            names.append(name)
        else:
            names.append(v.onnx if perm is not None and v.onnx is not None else cv.tf(v, node.name))
    return names[0], names[1], perm


def _result_dtype(node: TfNode, a: Val, b: Val) -> Any:
    return next((v.dtype for v in (a, b) if not v.is_const), a.dtype)


@op(*BINARY, "BiasAdd", "SquaredDifference", "FloorDiv", "FloorMod")
def binary(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    a, b = args[0], args[1]
    if node.op == "BiasAdd" and node.attr_str("data_format", "NHWC") == "NCHW":
        bias = _const(node, b, "the bias")
        b = Val.of(bias.reshape(-1, 1, 1))
    x, y, perm = _binary_inputs(cv, node, a, b)
    dtype = _result_dtype(node, a, b)
    if node.op in ("BiasAdd",):
        out = cv.emit1("Add", [x, y], node.name)
    elif node.op == "SquaredDifference":
        d = cv.emit1("Sub", [x, y], node.name)
        out = cv.emit1("Mul", [d, d], node.name)
    elif node.op in ("FloorDiv", "FloorMod"):
        out = _floor_div(cv, node, x, y, dtype)
    else:
        out = cv.emit1(BINARY[node.op], [x, y], node.name)
    return [Val(out, np.bool_ if node.op in COMPARISONS else dtype, perm)]


def _floor_div(cv: Converter, node: TfNode, x: str, y: str, dtype: Any) -> str:
    if np.dtype(dtype).kind == "f":
        q = cv.emit1("Floor", [cv.emit1("Div", [x, y], node.name)], node.name)
        if node.op == "FloorDiv":
            return q
        return cv.emit1("Sub", [x, cv.emit1("Mul", [q, y], node.name)], node.name)
    mod = cv.emit1("Mod", [x, y], node.name, fmod=0)  # integer Mod has the divisor's sign, as floor division needs
    if node.op == "FloorMod":
        return mod
    return cv.emit1("Div", [cv.emit1("Sub", [x, mod], node.name), y], node.name)  # exact: x - mod is a multiple


NUMPY_BINARY = {
    "Add": np.add,
    "AddV2": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Maximum": np.maximum,
    "Minimum": np.minimum,
    "Pow": np.power,
    "Greater": np.greater,
    "Less": np.less,
    "Equal": np.equal,
    "GreaterEqual": np.greater_equal,
    "LessEqual": np.less_equal,
    "LogicalAnd": np.logical_and,
    "LogicalOr": np.logical_or,
    "FloorMod": np.mod,
}


@fold(*NUMPY_BINARY, "RealDiv", "Div", "FloorDiv", "SquaredDifference", "BiasAdd")
def binary_fold(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    a, b = xs[0], xs[1]
    if node.op in NUMPY_BINARY:
        out = NUMPY_BINARY[node.op](a, b)
    elif node.op in ("RealDiv", "Div"):
        out = np.floor_divide(a, b) if a.dtype.kind in "iu" and node.op == "Div" else np.true_divide(a, b)
    elif node.op == "FloorDiv":
        out = np.floor_divide(a, b)
    elif node.op == "SquaredDifference":
        out = np.square(a - b)
    else:
        out = a + b
    return [np.asarray(out).astype(a.dtype) if np.asarray(out).dtype.kind != "b" else np.asarray(out)]


@fold("Cast")
def cast_fold(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [xs[0].astype(node.attr_dtype("DstT"))]


@op("AddN")
def add_n(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    return [Val(cv.emit1("Sum", [cv.tf(a, node.name) for a in args], node.name), args[0].dtype)]


@op("Prelu")
def prelu(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    x = args[0]
    assert x.onnx is not None
    slope = cv.const_like(_const(node, args[1], "alpha"), x.perm, node.name)
    if slope is None:
        raise TfjsError(f"node {node.name!r}: PReLU alpha does not broadcast")
    return [Val(cv.emit1("PRelu", [x.onnx, slope], node.name), x.dtype, x.perm)]


@op("FusedBatchNorm", "FusedBatchNormV3")
def batch_norm(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    """Inference batch norm folded into one multiply and one add per channel."""
    scale, offset, mean, var = (_const(node, a, "batch-norm statistics") for a in args[1:5])
    k = scale / np.sqrt(var + node.attr_float("epsilon", 1e-3))
    shape = (-1,) if node.attr_str("data_format", "NHWC") == "NHWC" else (-1, 1, 1)
    x = args[0]
    mul_node = TfNode(node.name, "Mul", [])
    scaled = binary(cv, mul_node, [x, Val.of(k.reshape(shape).astype(np.float32))])[0]
    return binary(
        cv, TfNode(node.name, "Add", []), [scaled, Val.of((offset - mean * k).reshape(shape).astype(np.float32))]
    )


# --- shape and layout ---------------------------------------------------------------------------
@op("Transpose")
def transpose(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    perm = tuple(int(i) for i in _const(node, args[1], "the permutation"))
    x = args[0]
    have = x.perm or tuple(range(len(perm)))
    return [Val(x.onnx, x.dtype, compose(have, perm))]  # no op: only the pending layout changes


@fold("Transpose")
def transpose_fold(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [np.transpose(xs[0], xs[1].astype(int))]


@op("Reshape")
def reshape(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    if args[1].is_const:
        assert args[1].const is not None
        target = args[1].const.astype(np.int64)
        shape = cv.constant(target, f"{node.name}/shape")
        allowzero = int(bool((target == 0).any()))  # TF's 0 means an empty axis, ONNX's means "copy"
    else:
        shape = cv.emit1("Cast", [cv.tf(args[1], node.name)], node.name, to=_onnx_type(np.int64))
        allowzero = 0
    return [Val(cv.emit1("Reshape", [cv.tf(args[0], node.name), shape], node.name, allowzero=allowzero), args[0].dtype)]


@fold("Reshape")
def reshape_fold(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [xs[0].reshape(xs[1].astype(int))]


@op("ExpandDims")
def expand_dims(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    axis = cv.constant(np.array([_axis(_const(node, args[1], "the axis"), None)], np.int64))
    return [Val(cv.emit1("Unsqueeze", [cv.tf(args[0], node.name), axis], node.name), args[0].dtype)]


@fold("ExpandDims")
def expand_dims_fold(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [np.expand_dims(xs[0], _axis(xs[1], xs[0].ndim + 1))]


@op("Squeeze")
def squeeze(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    dims = node.attr_ints("squeeze_dims") or node.attr_ints("axis")
    if not dims:
        raise TfjsError(f"node {node.name!r}: Squeeze without squeeze_dims needs static shapes; not supported")
    axes = cv.constant(np.array(dims, np.int64))
    return [Val(cv.emit1("Squeeze", [cv.tf(args[0], node.name), axes], node.name), args[0].dtype)]


@fold("Squeeze")
def squeeze_fold(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    dims = node.attr_ints("squeeze_dims") or node.attr_ints("axis")
    return [np.squeeze(xs[0], axis=tuple(dims) if dims else None)]


@op("ConcatV2")
def concat(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    *parts, axis_val = args
    axis = _axis(_const(node, axis_val, "the axis"), None)
    tensors = [p for p in parts if not p.is_const]
    perm = tensors[0].perm if tensors and all(p.perm == tensors[0].perm for p in tensors) else None
    if perm is not None and axis >= 0:  # concatenate in the pending layout: along the axis it maps to
        names = [cv.in_layout(p, perm, node.name) for p in parts]
        return [Val(cv.emit1("Concat", names, node.name, axis=perm[axis]), parts[0].dtype, perm)]
    return [Val(cv.emit1("Concat", [cv.tf(p, node.name) for p in parts], node.name, axis=axis), parts[0].dtype)]


@fold("ConcatV2")
def concat_fold(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [np.concatenate(xs[:-1], axis=_axis(xs[-1], xs[0].ndim))]


@op("Pack")
def pack(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    axis = node.attr_int("axis", 0)
    axes = cv.constant(np.array([axis], np.int64))
    parts = [cv.emit1("Unsqueeze", [cv.tf(a, node.name), axes], node.name) for a in args]
    return [Val(cv.emit1("Concat", parts, node.name, axis=axis), args[0].dtype)]


@fold("Pack")
def pack_fold(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [np.stack(xs, axis=node.attr_int("axis", 0))]


@op("Unpack")
def unpack(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    axis, num = node.attr_int("axis", 0), node.attr_int("num")
    x = cv.tf(args[0], node.name)
    axes = cv.constant(np.array([axis], np.int64))
    pieces = cv.emit("Split", [x], node.name, num, axis=axis) if num > 1 else [x]
    return [Val(cv.emit1("Squeeze", [p, axes], node.name), args[0].dtype) for p in pieces]


@op("Split", "SplitV")
def split(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    if node.op == "Split":  # inputs: axis, value
        axis_val, x = args
        sizes = None
        count = node.attr_int("num_split")
    else:  # SplitV: value, size_splits, axis
        x, size_val, axis_val = args
        sizes = _const(node, size_val, "size_splits").astype(np.int64)
        if (sizes < 0).any():
            raise TfjsError(f"node {node.name!r}: SplitV with an inferred (-1) size needs static shapes")
        count = len(sizes)
    axis = _axis(_const(node, axis_val, "the axis"), None)
    if axis < 0 and x.perm is not None:
        axis += len(x.perm)
    perm = x.perm if axis >= 0 else None
    src = x.onnx if perm is not None else cv.tf(x, node.name)
    assert src is not None
    inputs = [src] + ([cv.constant(sizes)] if sizes is not None else [])
    onnx_axis = perm[axis] if perm is not None else axis
    outs = cv.emit("Split", inputs, node.name, count, axis=onnx_axis)
    return [Val(o, x.dtype, perm) for o in outs]


@op("Pad", "PadV2", "MirrorPad")
def pad(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    x = args[0]
    pads = _const(node, args[1], "the paddings").astype(np.int64)  # [rank, 2] in TF axis order
    perm = x.perm
    if perm is not None:  # pad the ONNX tensor: its axis perm[i] is TF axis i
        onnx_pads = np.zeros_like(pads)
        for i, axis in enumerate(perm):
            onnx_pads[axis] = pads[i]
        pads = onnx_pads
    src = x.onnx if perm is not None else cv.tf(x, node.name)
    assert src is not None
    inputs = [src, cv.constant(np.concatenate([pads[:, 0], pads[:, 1]]))]
    attrs: dict[str, Any] = {}
    if node.op == "PadV2":
        inputs.append(cv.constant(_const(node, args[2], "the pad value").astype(x.dtype).reshape(())))
    elif node.op == "MirrorPad":
        mode = node.attr_str("mode", "REFLECT")
        if mode != "REFLECT":
            raise TfjsError(f"node {node.name!r}: MirrorPad mode {mode!r} has no ONNX equivalent (only REFLECT)")
        attrs["mode"] = "reflect"
    return [Val(cv.emit1("Pad", inputs, node.name, **attrs), x.dtype, perm)]


@fold("Pad", "PadV2")
def pad_fold(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    value = xs[2].item() if len(xs) > 2 else 0
    return [np.pad(xs[0], xs[1].astype(int), constant_values=value)]


@fold("SparseToDense")
def sparse_to_dense(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    indices, shape, values, default = xs
    out = np.full(shape.astype(int), default.item(), dtype=values.dtype)
    idx = indices.astype(int).reshape(-1, 1) if indices.ndim < 2 else indices.astype(int)  # [n, rank]
    vals = np.broadcast_to(values, (len(idx),))
    for row, v in zip(idx, vals):
        out[tuple(row)] = v
    return [out]


# --- gathers, reductions, matmul ---------------------------------------------------------------
@op("GatherNd")
def gather_nd(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    indices = cv.tf(args[1], node.name)
    if args[1].dtype != np.int64:
        indices = cv.emit1("Cast", [indices], node.name, to=_onnx_type(np.int64))
    return [Val(cv.emit1("GatherND", [cv.tf(args[0], node.name), indices], node.name), args[0].dtype)]


@op("GatherV2")
def gather(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    if node.attr_int("batch_dims", 0):
        raise TfjsError(f"node {node.name!r}: GatherV2 with batch_dims is not supported")
    axis = _axis(_const(node, args[2], "the axis"), None)
    return [
        Val(
            cv.emit1("Gather", [cv.tf(args[0], node.name), cv.tf(args[1], node.name)], node.name, axis=axis),
            args[0].dtype,
        )
    ]


@fold("GatherV2")
def gather_fold(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [np.take(xs[0], xs[1].astype(int), axis=_axis(xs[2], xs[0].ndim))]


@op("ArgMax", "ArgMin")
def arg_max(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    axis = _axis(_const(node, args[1], "the axis"), None)
    out = cv.emit1(node.op, [cv.tf(args[0], node.name)], node.name, axis=axis, keepdims=0)
    dtype = node.attr_dtype("output_type", np.int64)
    if dtype != np.int64:
        out = cv.emit1("Cast", [out], node.name, to=_onnx_type(dtype))
    return [Val(out, dtype)]


REDUCTIONS = {"Mean": "ReduceMean", "Sum": "ReduceSum", "Max": "ReduceMax", "Min": "ReduceMin", "Prod": "ReduceProd"}


@op(*REDUCTIONS)
def reduce(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    axes = [int(a) for a in np.asarray(_const(node, args[1], "the axes")).reshape(-1)]
    keep = int(node.attr_bool("keep_dims"))
    x = cv.tf(args[0], node.name)
    if node.op == "Sum":  # opset 13+: ReduceSum takes its axes as an input; the others as an attribute
        out = cv.emit1("ReduceSum", [x, cv.constant(np.array(axes, np.int64))], node.name, keepdims=keep)
    else:
        out = cv.emit1(REDUCTIONS[node.op], [x], node.name, axes=axes, keepdims=keep)
    return [Val(out, args[0].dtype)]


@op("MatMul", "BatchMatMulV2", "_FusedMatMul")
def matmul(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    a, b = cv.tf(args[0], node.name), cv.tf(args[1], node.name)
    if node.attr_bool("transpose_a") or node.attr_bool("adj_x"):
        a = (
            cv.emit1("Transpose", [a], node.name, perm=[1, 0])
            if node.op != "BatchMatMulV2"
            else cv.emit1("Einsum", [a], node.name, equation="...ij->...ji")
        )
    if node.attr_bool("transpose_b") or node.attr_bool("adj_y"):
        b = (
            cv.emit1("Transpose", [b], node.name, perm=[1, 0])
            if node.op != "BatchMatMulV2"
            else cv.emit1("Einsum", [b], node.name, equation="...ij->...ji")
        )
    out = cv.emit1("MatMul", [a, b], node.name)
    fused = [s.lower() for s in node.attr_strs("fused_ops")]
    if fused:
        if fused[0] != "biasadd":
            raise TfjsError(f"node {node.name!r}: fused op {fused[0]!r} is not supported")
        out = cv.emit1("Add", [out, cv.tf(args[2], node.name)], node.name)
        out = _activation(cv, node, out, fused[1] if len(fused) > 1 else None, args[2:], nhwc=False)
    return [Val(out, np.float32)]


@op("Softmax", "LogSoftmax")
def softmax(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    return [Val(cv.emit1(node.op, [cv.tf(args[0], node.name)], node.name, axis=-1), args[0].dtype)]


@op("Tile")
def tile(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    reps = cv.emit1("Cast", [cv.tf(args[1], node.name)], node.name, to=_onnx_type(np.int64))
    return [Val(cv.emit1("Tile", [cv.tf(args[0], node.name), reps], node.name), args[0].dtype)]


@op("Select", "SelectV2")
def select(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    names = [cv.tf(a, node.name) for a in args]
    cond, x = cv.static_shape(args[0]), cv.static_shape(args[1])
    if node.op == "Select" and cond is not None and x is not None and len(cond) == 1 < len(x):
        # TF1 Select with a vector condition picks whole rows; ONNX Where broadcasts from the right
        axes = cv.constant(np.arange(1, len(x), dtype=np.int64))
        names[0] = cv.emit1("Unsqueeze", [names[0], axes], node.name)
    return [Val(cv.emit1("Where", names, node.name), args[1].dtype)]


# --- shapes known while converting, slicing, index generators -------------------------------------
@op("Shape", "Size")
def shape(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    """Folded to a constant when the shape is static (it usually is in these graphs), so the shape
    arithmetic after it (StridedSlice, Range, Fill) folds too."""
    dtype = node.attr_dtype("out_type", np.int32)
    static = cv.static_shape(args[0])
    if static is not None:
        dims = np.array(static, dtype)
        return [Val.of(dims if node.op == "Shape" else np.array(np.prod(dims), dtype))]
    s = cv.emit1("Shape", [cv.tf(args[0], node.name)], node.name)
    if node.op == "Size":
        s = cv.emit1("ReduceProd", [s], node.name, keepdims=0)
    return [Val(cv.emit1("Cast", [s], node.name, to=_onnx_type(dtype)), dtype)]


def _slice_spec(node: TfNode, begin: np.ndarray, end: np.ndarray, strides: np.ndarray) -> list[Any]:
    """StridedSlice as numpy index items: None (new axis), an int (shrunk axis) or a slice."""
    if node.attr_int("ellipsis_mask", 0):
        raise TfjsError(f"node {node.name!r}: StridedSlice with an ellipsis is not supported")
    masks = {k: node.attr_int(k, 0) for k in ("begin_mask", "end_mask", "new_axis_mask", "shrink_axis_mask")}
    items: list[Any] = []
    for i, (b, e, s) in enumerate(zip(begin.tolist(), end.tolist(), strides.tolist())):
        bit = 1 << i
        if masks["new_axis_mask"] & bit:
            items.append(None)
        elif masks["shrink_axis_mask"] & bit:
            items.append(int(b))
        else:
            items.append(
                slice(
                    None if masks["begin_mask"] & bit else int(b), None if masks["end_mask"] & bit else int(e), int(s)
                )
            )
    return items


@fold("StridedSlice")
def strided_slice_fold(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(xs[0][tuple(_slice_spec(node, *xs[1:4]))])]


@op("StridedSlice")
def strided_slice(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    begin, end, strides = (_const(node, a, "begin/end/strides").astype(np.int64) for a in args[1:4])
    big = np.iinfo(np.int64).max
    starts, ends, axes, steps, shrunk, new_axes = [], [], [], [], [], []
    dim = out = 0  # input axis consumed, output axis produced
    for item in _slice_spec(node, begin, end, strides):
        if item is None:
            new_axes.append(out)
            out += 1
            continue
        if isinstance(item, int):
            starts.append(item)
            ends.append(item + 1 if item != -1 else big)
            steps.append(1)
            shrunk.append(dim)
        else:
            step = item.step or 1
            starts.append(item.start if item.start is not None else (0 if step > 0 else big))
            ends.append(item.stop if item.stop is not None else (big if step > 0 else -big))
            steps.append(step)
            out += 1
        axes.append(dim)
        dim += 1
    y = cv.emit1(
        "Slice",
        [cv.tf(args[0], node.name), *(cv.constant(np.array(v, np.int64)) for v in (starts, ends, axes, steps))],
        node.name,
    )
    if shrunk:
        y = cv.emit1("Squeeze", [y, cv.constant(np.array(shrunk, np.int64))], node.name)
    if new_axes:
        y = cv.emit1("Unsqueeze", [y, cv.constant(np.array(new_axes, np.int64))], node.name)
    return [Val(y, args[0].dtype)]


@fold("Range")
def range_fold(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    start, limit, delta = (x.item() for x in xs)
    return [np.arange(start, limit, delta, dtype=node.attr_dtype("Tidx", xs[0].dtype))]


@op("Range")
def range_op(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    dtype = node.attr_dtype("Tidx", args[0].dtype)
    parts = [cv.emit1("Cast", [cv.tf(a, node.name)], node.name, to=_onnx_type(dtype)) for a in args]
    return [Val(cv.emit1("Range", parts, node.name), dtype)]


@fold("Fill")
def fill_fold(node: TfNode, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [np.full(xs[0].astype(int), xs[1].item(), dtype=xs[1].dtype)]


@op("Fill")
def fill(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    dims = cv.emit1("Cast", [cv.tf(args[0], node.name)], node.name, to=_onnx_type(np.int64))
    return [Val(cv.emit1("Expand", [cv.tf(args[1], node.name), dims], node.name), args[1].dtype)]


@op("TopKV2")
def top_k(cv: Converter, node: TfNode, args: list[Val]) -> list[Val]:
    k = cv.constant(_const(node, args[1], "k").astype(np.int64).reshape(1))
    values, indices = cv.emit("TopK", [cv.tf(args[0], node.name), k], node.name, 2, axis=-1, largest=1, sorted=1)
    return [Val(values, args[0].dtype), Val(cv.emit1("Cast", [indices], node.name, to=_onnx_type(np.int32)), np.int32)]
