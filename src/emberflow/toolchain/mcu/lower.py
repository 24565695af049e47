"""Lower each TFLite operator to calls of the shared C kernels with const parameter structs.

Every number a kernel needs at run time is computed here, once, as TFLite-Micro's Prepare
would (see quantmath.py): multipliers and shifts, folded biases, activation ranges, padding,
slice strides. The C side only loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emberflow.toolchain.mcu import quantmath as qm
from emberflow.toolchain.mcu.tflite_model import Op, Subgraph, Tensor


class CompileError(ValueError):
    """The model cannot be compiled; the message names the node and says what to do."""


@dataclass
class ConstArray:
    cname: str
    ctype: str
    values: np.ndarray


@dataclass
class Layer:
    op: Op
    calls: list[
        str
    ]  # C statements; {tN} is the pointer to tensor N, {scratch} the layer's scratch
    params: list[tuple[str, str, str]] = field(
        default_factory=list
    )  # (C type, name, initializer)
    consts: list[ConstArray] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)
    scratch: int = 0
    macc: int = 0


SUPPORTED_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "ADD",
    "MUL",
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "RESHAPE",
    "SQUEEZE",
    "EXPAND_DIMS",
    "SOFTMAX",
    "LOGISTIC",
    "CONCATENATION",
    "STRIDED_SLICE",
    "SPLIT",
    "SPLIT_V",
    "PAD",
    "PADV2",
    "MEAN",
    "QUANTIZE",
    "DEQUANTIZE",
    "CALL_ONCE",
    "VAR_HANDLE",
    "READ_VARIABLE",
    "ASSIGN_VARIABLE",
)
ALIAS_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
C_TYPES = {
    "int8": "EF_INT8",
    "uint8": "EF_UINT8",
    "int16": "EF_INT16",
    "int32": "EF_INT32",
    "float32": "EF_FLOAT32",
}


def _arr(values) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def _requant_init(
    prefix: str, mults: list[int], shifts: list[int]
) -> tuple[str, list[ConstArray]]:
    per_channel = len(set(zip(mults, shifts))) > 1
    if not per_channel:
        mults, shifts = mults[:1], shifts[:1]
    consts = [
        ConstArray(f"{prefix}_mult", "int32_t", np.array(mults, np.int64)),
        ConstArray(f"{prefix}_shift", "int8_t", np.array(shifts, np.int64)),
    ]
    return f"{{{prefix}_mult, {prefix}_shift, {int(per_channel)}}}", consts


def _padding(
    padding: int, in_size: int, k: int, stride: int, dilation: int, out_size: int
) -> int:
    """TFLite SAME (0) puts the odd padding pixel at the end; VALID (1) has none."""
    if padding == 1:
        return 0
    eff = (k - 1) * dilation + 1
    total = max((out_size - 1) * stride + eff - in_size, 0)
    return total // 2


class Lowering:
    def __init__(self, sg: Subgraph, prefix: str) -> None:
        self.sg = sg
        self.prefix = prefix

    def t(self, i: int) -> Tensor:
        return self.sg.tensors[i]

    def fail(self, op: Op, why: str) -> CompileError:
        out = self.t(op.outputs[0]).name if op.outputs else ""
        return CompileError(
            f"{op.op_type} {op.name}{f' ({out})' if out else ''}: {why}"
        )

    def need_int8(self, op: Op, *tensors: Tensor) -> None:
        for x in tensors:
            if x.dtype == "float32":
                raise self.fail(
                    op,
                    "float tensors: compile needs an int8 model; quantize it first "
                    "(`emberflow quantize` then `emberflow export-tflite`, or the TFLite converter)",
                )
            if x.dtype != "int8":
                raise self.fail(
                    op, f"{x.dtype} tensor {x.name} is not supported (int8 only)"
                )

    def lower(self, op: Op) -> Layer | None:
        handler = getattr(self, "op_" + op.op_type.lower(), None)
        if op.op_type not in SUPPORTED_OPS or handler is None:
            raise self.fail(
                op,
                f"op {op.op_type} is not supported by emberflow compile; supported: "
                f"{', '.join(SUPPORTED_OPS)}",
            )
        return handler(op)

    # ---------------------------------------------------------------- matrix products
    def _gemm(
        self,
        op: Op,
        name: str,
        x: Tensor,
        w: Tensor,
        bias_i: int,
        y: Tensor,
        w2d: np.ndarray,
        activation: int,
    ) -> tuple[str, list[ConstArray]]:
        n, k = w2d.shape
        if w.dtype != "int8" or not w.is_const:
            raise self.fail(op, "weights must be constant int8")
        if any(z != 0 for z in w.zero_point):
            raise self.fail(
                op, "weights must be symmetric (zero point 0), as TFLite int8 specifies"
            )
        bias = np.zeros(n, np.int64)
        if bias_i >= 0:
            b = self.t(bias_i)
            if b.data is None or b.dtype != "int32":
                raise self.fail(op, "bias must be a constant int32 tensor")
            bias = b.data.astype(np.int64).ravel()
        # the input offset times each weight row, folded into the bias (wraps like int32 accumulation)
        folded = bias + (-x.zp) * w2d.astype(np.int64).sum(axis=1)
        folded = ((folded + 2**31) % 2**32) - 2**31
        mults, shifts = qm.per_channel_multipliers(x.sc, w.scale, y.sc, n)
        rq, rq_consts = _requant_init(name, mults, shifts)
        lo, hi = qm.activation_range(activation, y.sc, y.zp, y.dtype)
        consts = [
            ConstArray(f"{name}_w", "int8_t", w2d.astype(np.int64).ravel()),
            ConstArray(f"{name}_b", "int32_t", folded),
        ] + rq_consts
        init = f"{{{name}_w, {name}_b, {rq}, {k}, {n}, {y.zp}, {lo}, {hi}}}"
        return init, consts

    def op_conv_2d(self, op: Op) -> Layer:
        x, w, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        self.need_int8(op, x, y)
        o = op.options
        _, in_h, in_w, in_c = x.shape
        cout, kh, kw, cin = w.shape
        _, out_h, out_w, _ = y.shape
        if cin != in_c:
            raise self.fail(
                op,
                f"grouped convolution ({in_c} input channels, filter has {cin}) is not supported",
            )
        sh, sw, dh, dw = (
            o["strideH"],
            o["strideW"],
            o.get("dilationHFactor", 1),
            o.get("dilationWFactor", 1),
        )
        pt = _padding(o["padding"], in_h, kh, sh, dh, out_h)
        pl = _padding(o["padding"], in_w, kw, sw, dw, out_w)
        name = f"{self.prefix}_L{op.index}"
        bias_i = op.inputs[2] if len(op.inputs) > 2 else -1
        gemm, consts = self._gemm(
            op,
            name,
            x,
            w,
            bias_i,
            y,
            w.data.reshape(cout, -1),
            o.get("fusedActivationFunction", 0),
        )
        init = (
            f"{{{gemm}, {in_h}, {in_w}, {in_c}, {out_h}, {out_w}, {kh}, {kw}, {sh}, {sw}, {dh}, {dw}, "
            f"{pt}, {pl}, {x.zp}}}"
        )
        k = kh * kw * cin
        contiguous = dw == 1 and (kh == 1 or (kw == in_w and dh == 1))
        inside = (
            pt == 0
            and pl == 0
            and (out_h - 1) * sh + (kh - 1) * dh < in_h
            and (out_w - 1) * sw + (kw - 1) * dw < in_w
        )
        scratch = 0 if contiguous and inside else 2 * k
        call = f"ef_conv_s8(&{name}, {{t{x.index}}}, {{t{y.index}}}, {'{scratch}' if scratch else '0'});"
        return Layer(
            op,
            [call],
            [("ef_conv_params", name, init)],
            consts,
            [x.index],
            [y.index],
            scratch,
            y.size * k,
        )

    def op_fully_connected(self, op: Op) -> Layer:
        x, w, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        self.need_int8(op, x, y)
        n, k = w.shape
        if x.size % k:
            raise self.fail(
                op,
                f"input of {x.size} elements is not a multiple of the {k} weight columns",
            )
        name = f"{self.prefix}_L{op.index}"
        bias_i = op.inputs[2] if len(op.inputs) > 2 else -1
        gemm, consts = self._gemm(
            op,
            name,
            x,
            w,
            bias_i,
            y,
            w.data,
            op.options.get("fusedActivationFunction", 0),
        )
        batches = x.size // k
        call = f"ef_fc_s8(&{name}, {{t{x.index}}}, {{t{y.index}}});"
        return Layer(
            op,
            [call],
            [("ef_fc_params", name, f"{{{gemm}, {batches}}}")],
            consts,
            [x.index],
            [y.index],
            macc=batches * n * k,
        )

    def op_depthwise_conv_2d(self, op: Op) -> Layer:
        x, w, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        self.need_int8(op, x, y)
        if w.dtype != "int8" or not w.is_const:
            raise self.fail(op, "weights must be constant int8")
        o = op.options
        _, in_h, in_w, in_c = x.shape
        _, kh, kw, out_c = w.shape
        _, out_h, out_w, _ = y.shape
        dm = out_c // in_c
        sh, sw, dh, dw = (
            o["strideH"],
            o["strideW"],
            o.get("dilationHFactor", 1),
            o.get("dilationWFactor", 1),
        )
        pt = _padding(o["padding"], in_h, kh, sh, dh, out_h)
        pl = _padding(o["padding"], in_w, kw, sw, dw, out_w)
        name = f"{self.prefix}_L{op.index}"
        bias = np.zeros(out_c, np.int64)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            bias = self.t(op.inputs[2]).data.astype(np.int64).ravel()
        mults, shifts = qm.per_channel_multipliers(x.sc, w.scale, y.sc, out_c)
        rq, consts = _requant_init(name, mults, shifts)
        lo, hi = qm.activation_range(
            o.get("fusedActivationFunction", 0), y.sc, y.zp, y.dtype
        )
        consts = [
            ConstArray(f"{name}_w", "int8_t", w.data.astype(np.int64).ravel()),
            ConstArray(f"{name}_b", "int32_t", bias),
        ] + consts
        init = (
            f"{{{name}_w, {name}_b, {rq}, {in_h}, {in_w}, {in_c}, {out_h}, {out_w}, {out_c}, {kh}, {kw}, "
            f"{sh}, {sw}, {dh}, {dw}, {dm}, {pt}, {pl}, {-x.zp}, {y.zp}, {lo}, {hi}}}"
        )
        call = f"ef_dwconv_s8(&{name}, {{t{x.index}}}, {{t{y.index}}});"
        return Layer(
            op,
            [call],
            [("ef_dwconv_params", name, init)],
            consts,
            [x.index],
            [y.index],
            macc=y.size * kh * kw,
        )

    # ---------------------------------------------------------------- pooling and reductions
    def _pool(self, op: Op, kernel: str) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        self.need_int8(op, x, y)
        if (x.sc, x.zp) != (y.sc, y.zp):
            raise self.fail(
                op, "input and output quantization differ (TFLM pools keep the input's)"
            )
        o = op.options
        n, in_h, in_w, c = x.shape
        _, out_h, out_w, _ = y.shape
        kh, kw, sh, sw = o["filterHeight"], o["filterWidth"], o["strideH"], o["strideW"]
        pt, pl = (
            _padding(o["padding"], in_h, kh, sh, 1, out_h),
            _padding(o["padding"], in_w, kw, sw, 1, out_w),
        )
        lo, hi = qm.activation_range(
            o.get("fusedActivationFunction", 0), y.sc, y.zp, y.dtype
        )
        name = f"{self.prefix}_L{op.index}"
        init = f"{{{in_h}, {in_w}, {c}, {out_h}, {out_w}, {n}, {kh}, {kw}, {sh}, {sw}, {pt}, {pl}, {lo}, {hi}}}"
        call = f"{kernel}(&{name}, {{t{x.index}}}, {{t{y.index}}});"
        return Layer(
            op,
            [call],
            [("ef_pool_params", name, init)],
            [],
            [x.index],
            [y.index],
            macc=y.size * kh * kw,
        )

    def op_average_pool_2d(self, op: Op) -> Layer:
        return self._pool(op, "ef_avgpool_s8")

    def op_max_pool_2d(self, op: Op) -> Layer:
        return self._pool(op, "ef_maxpool_s8")

    def op_mean(self, op: Op) -> Layer:
        x, axes_t, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        self.need_int8(op, x, y)
        if axes_t.data is None:
            raise self.fail(op, "axes must be constant")
        axes = sorted({int(a) % len(x.shape) for a in axes_t.data.ravel()})
        if axes != list(range(axes[0], axes[-1] + 1)):
            raise self.fail(
                op, f"reducing over non-adjacent axes {axes} is not supported"
            )
        outer = int(np.prod(x.shape[: axes[0]], dtype=np.int64))
        reduce = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
        inner = int(np.prod(x.shape[axes[-1] + 1 :], dtype=np.int64))
        mult, shift = qm.mean_multiplier(x.sc, y.sc, reduce)
        name = f"{self.prefix}_L{op.index}"
        init = f"{{{outer}, {reduce}, {inner}, {x.zp}, {y.zp}, {mult}, {shift}, -128, 127}}"
        call = f"ef_mean_s8(&{name}, {{t{x.index}}}, {{t{y.index}}});"
        return Layer(
            op,
            [call],
            [("ef_mean_params", name, init)],
            [],
            [x.index],
            [y.index],
            macc=x.size,
        )

    # ---------------------------------------------------------------- elementwise
    def _binary(self, op: Op, kernel: str, params: dict[str, int]) -> Layer:
        a, b, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        self.need_int8(op, a, b, y)
        out_shape = (1,) * (4 - len(y.shape)) + tuple(y.shape)
        if len(out_shape) > 4:
            raise self.fail(op, "more than 4 dimensions are not supported")

        def strides(t: Tensor) -> list[int]:
            shape = (1,) * (4 - len(t.shape)) + tuple(t.shape)
            dense = [int(np.prod(shape[i + 1 :], dtype=np.int64)) for i in range(4)]
            return [
                0 if shape[i] == 1 and out_shape[i] != 1 else dense[i] for i in range(4)
            ]

        lo, hi = qm.activation_range(
            op.options.get("fusedActivationFunction", 0), y.sc, y.zp, y.dtype
        )
        name = f"{self.prefix}_L{op.index}"
        p = params
        init = (
            f"{{{_arr(out_shape)}, {_arr(strides(a))}, {_arr(strides(b))}, {-a.zp}, {-b.zp}, {y.zp}, "
            f"{p['in1_mult']}, {p['in2_mult']}, {p['out_mult']}, {p['in1_shift']}, {p['in2_shift']}, "
            f"{p['out_shift']}, {p['left_shift']}, {lo}, {hi}}}"
        )
        call = f"{kernel}(&{name}, {{t{a.index}}}, {{t{b.index}}}, {{t{y.index}}});"
        return Layer(
            op,
            [call],
            [("ef_binary_params", name, init)],
            [],
            [a.index, b.index],
            [y.index],
            macc=y.size,
        )

    def op_add(self, op: Op) -> Layer:
        a, b, y = (self.t(i) for i in (*op.inputs[:2], op.outputs[0]))
        return self._binary(op, "ef_add_s8", qm.add_params(a.sc, b.sc, y.sc))

    def op_mul(self, op: Op) -> Layer:
        a, b, y = (self.t(i) for i in (*op.inputs[:2], op.outputs[0]))
        return self._binary(op, "ef_mul_s8", qm.mul_params(a.sc, b.sc, y.sc))

    def op_softmax(self, op: Op) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        self.need_int8(op, x, y)
        if (y.zp, y.sc) != (-128, 1.0 / 256):
            raise self.fail(
                op, "int8 softmax output must have scale 1/256 and zero point -128"
            )
        p = qm.softmax_params(float(op.options.get("beta", 1.0)), x.sc)
        depth = x.shape[-1]
        name = f"{self.prefix}_L{op.index}"
        init = f"{{{x.size // depth}, {depth}, {p['input_multiplier']}, {p['input_left_shift']}, {p['diff_min']}}}"
        call = f"ef_softmax_s8(&{name}, {{t{x.index}}}, {{t{y.index}}});"
        return Layer(
            op,
            [call],
            [("ef_softmax_params", name, init)],
            [],
            [x.index],
            [y.index],
            macc=4 * x.size,
        )

    def op_logistic(self, op: Op) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        self.need_int8(op, x, y)
        if (y.zp, y.sc) != (-128, 1.0 / 256):
            raise self.fail(
                op, "int8 logistic output must have scale 1/256 and zero point -128"
            )
        p = qm.logistic_params(x.sc)
        name = f"{self.prefix}_L{op.index}"
        init = f"{{{x.size}, {x.zp}, {p['range_radius']}, {p['input_multiplier']}, {p['input_left_shift']}}}"
        call = f"ef_logistic_s8(&{name}, {{t{x.index}}}, {{t{y.index}}});"
        return Layer(
            op,
            [call],
            [("ef_logistic_params", name, init)],
            [],
            [x.index],
            [y.index],
            macc=x.size,
        )

    def op_quantize(self, op: Op) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        name = f"{self.prefix}_L{op.index}"
        if x.dtype == "float32":
            if y.dtype != "int8":
                raise self.fail(op, f"float32 to {y.dtype} is not supported")
            init = f"{{{x.size}, {y.zp}, {y.sc!r}f}}"
            call = f"ef_quantize_f32(&{name}, {{t{x.index}}}, {{t{y.index}}});"
            return Layer(
                op,
                [call],
                [("ef_float_params", name, init)],
                [],
                [x.index],
                [y.index],
                macc=x.size,
            )
        if x.dtype not in ("int8", "uint8", "int16") or y.dtype not in (
            "int8",
            "uint8",
            "int16",
        ):
            raise self.fail(op, f"{x.dtype} to {y.dtype} is not supported")
        mult, shift = qm.quantize_multiplier(x.sc / y.sc)
        same_scale = mult == 1 << 30 and shift == 1
        flip = same_scale and (
            (x.dtype, y.dtype, x.zp - y.zp)
            in (("int8", "uint8", -128), ("uint8", "int8", 128))
        )
        init = f"{{{x.size}, {x.zp}, {y.zp}, {mult}, {shift}, {C_TYPES[x.dtype]}, {C_TYPES[y.dtype]}, {int(flip)}}}"
        call = f"ef_requantize(&{name}, {{t{x.index}}}, {{t{y.index}}});"
        return Layer(
            op,
            [call],
            [("ef_requantize_params", name, init)],
            [],
            [x.index],
            [y.index],
            macc=x.size,
        )

    def op_dequantize(self, op: Op) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        if x.dtype != "int8" or y.dtype != "float32":
            raise self.fail(op, f"{x.dtype} to {y.dtype} is not supported")
        name = f"{self.prefix}_L{op.index}"
        init = f"{{{x.size}, {x.zp}, {x.sc!r}f}}"
        call = f"ef_dequantize_s8(&{name}, {{t{x.index}}}, {{t{y.index}}});"
        return Layer(
            op,
            [call],
            [("ef_float_params", name, init)],
            [],
            [x.index],
            [y.index],
            macc=x.size,
        )

    # ---------------------------------------------------------------- data movement
    def _copy_init(
        self, x: Tensor, starts: list[int], counts: list[int], steps: list[int]
    ) -> str:
        rank = len(x.shape)
        if rank > 5:
            raise ValueError("more than 5 dimensions")
        dense = [int(np.prod(x.shape[i + 1 :], dtype=np.int64)) for i in range(rank)]
        pad = 5 - rank
        count = [1] * pad + counts
        stride = [0] * pad + [steps[i] * dense[i] for i in range(rank)]
        start = sum(starts[i] * dense[i] for i in range(rank))
        return f"{{{_arr(count)}, {_arr(stride)}, {start}, {x.itemsize}}}"

    def op_strided_slice(self, op: Op) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        begin, end, strides = (self.t(i).data for i in op.inputs[1:4])
        o = op.options
        if begin is None or end is None or strides is None:
            raise self.fail(op, "begin, end and strides must be constant")
        if (
            o.get("ellipsisMask", 0)
            or o.get("newAxisMask", 0)
            or o.get("offset", False)
        ):
            raise self.fail(
                op, "ellipsis, new-axis masks and offset mode are not supported"
            )
        starts, counts, steps = [], [], []
        for axis, size in enumerate(x.shape):
            step = int(strides[axis])
            start = int(begin[axis])
            if o.get("beginMask", 0) & (1 << axis):
                start = qm.INT_LOWEST if step > 0 else qm.INT32_MAX
            if start < 0:
                start += size
            start = (
                min(max(start, 0), size) if step > 0 else min(max(start, -1), size - 1)
            )
            if o.get("shrinkAxisMask", 0) & (1 << axis):
                stop = start + 1
            else:
                stop = int(end[axis])
                if o.get("endMask", 0) & (1 << axis):
                    stop = qm.INT32_MAX if step > 0 else qm.INT_LOWEST
                if stop < 0:
                    stop += size
                stop = (
                    min(max(stop, 0), size)
                    if step > 0
                    else min(max(stop, -1), size - 1)
                )
            count = (
                max(0, -(-(stop - start) // step))
                if step > 0
                else max(0, -(-(start - stop) // -step))
            )
            starts.append(start)
            counts.append(count)
            steps.append(step)
        if int(np.prod(counts)) != y.size:
            raise self.fail(
                op,
                f"slice of {counts} elements does not match the output shape {list(y.shape)}",
            )
        name = f"{self.prefix}_L{op.index}"
        call = f"ef_copy(&{name}, {{t{x.index}}}, {{t{y.index}}});"
        return Layer(
            op,
            [call],
            [("ef_copy_params", name, self._copy_init(x, starts, counts, steps))],
            [],
            [x.index],
            [y.index],
        )

    def _split(self, op: Op, x: Tensor, axis: int, sizes: list[int]) -> Layer:
        axis %= len(x.shape)
        calls, params, offset = [], [], 0
        for j, (out_i, size) in enumerate(zip(op.outputs, sizes)):
            starts = [0] * len(x.shape)
            starts[axis] = offset
            counts = list(x.shape)
            counts[axis] = size
            name = f"{self.prefix}_L{op.index}_{j}"
            params.append(
                (
                    "ef_copy_params",
                    name,
                    self._copy_init(x, starts, counts, [1] * len(x.shape)),
                )
            )
            calls.append(f"ef_copy(&{name}, {{t{x.index}}}, {{t{out_i}}});")
            offset += size
        return Layer(op, calls, params, [], [x.index], list(op.outputs))

    def op_split_v(self, op: Op) -> Layer:
        x, sizes_t, axis_t = (self.t(i) for i in op.inputs[:3])
        if sizes_t.data is None or axis_t.data is None:
            raise self.fail(op, "size_splits and axis must be constant")
        axis = int(axis_t.data.ravel()[0]) % len(x.shape)
        sizes = [int(s) for s in sizes_t.data.ravel()]
        if -1 in sizes:
            sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
        return self._split(op, x, axis, sizes)

    def op_split(self, op: Op) -> Layer:
        axis_t, x = self.t(op.inputs[0]), self.t(op.inputs[1])
        if axis_t.data is None:
            raise self.fail(op, "axis must be constant")
        axis = int(axis_t.data.ravel()[0]) % len(x.shape)
        n = len(op.outputs)
        return self._split(op, x, axis, [x.shape[axis] // n] * n)

    def op_concatenation(self, op: Op) -> Layer:
        ins = [self.t(i) for i in op.inputs]
        y = self.t(op.outputs[0])
        if len(ins) > 8:
            raise self.fail(op, f"{len(ins)} inputs; at most 8 are supported")
        if op.options.get("fusedActivationFunction", 0):
            raise self.fail(op, "a fused activation on CONCATENATION is not supported")
        for x in ins:
            if x.scale and (x.sc, x.zp) != (y.sc, y.zp):
                raise self.fail(
                    op,
                    f"input {x.name} has another scale or zero point than the output "
                    "(TFLM's int8 CONCATENATION requires them equal)",
                )
        axis = int(op.options.get("axis", 0)) % len(y.shape)
        outer = int(np.prod(y.shape[:axis], dtype=np.int64))
        inner = [int(np.prod(x.shape[axis:], dtype=np.int64)) * x.itemsize for x in ins]
        name = f"{self.prefix}_L{op.index}"
        init = f"{{{outer}, {len(ins)}, {_arr(inner + [0] * (8 - len(inner)))}}}"
        ptrs = ", ".join(f"{{t{x.index}}}" for x in ins)
        call = f"{{{{ const void *const in_[{len(ins)}] = {{{{{ptrs}}}}}; ef_concat(&{name}, in_, {{t{y.index}}}); }}}}"
        return Layer(
            op,
            [call],
            [("ef_concat_params", name, init)],
            [],
            [x.index for x in ins],
            [y.index],
        )

    def op_pad(self, op: Op) -> Layer:
        x, pads_t, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        if pads_t.data is None:
            raise self.fail(op, "paddings must be constant")
        pads = pads_t.data.reshape(-1, 2).astype(int)
        value = y.zp
        if op.op_type == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            v = self.t(op.inputs[2])
            if v.data is None:
                raise self.fail(op, "the pad value must be constant")
            value = int(v.data.ravel()[0])
        rank = len(x.shape)
        if rank > 5:
            raise self.fail(op, "more than 5 dimensions are not supported")
        out_dense = [
            int(np.prod(y.shape[i + 1 :], dtype=np.int64)) for i in range(rank)
        ]
        start = sum(int(pads[i][0]) * out_dense[i] for i in range(rank))
        count = [1] * (5 - rank) + list(x.shape)
        stride = [0] * (5 - rank) + out_dense
        name = f"{self.prefix}_L{op.index}"
        init = f"{{{_arr(count)}, {_arr(stride)}, {start}, {y.size}, {value}, {x.itemsize}}}"
        call = f"ef_pad(&{name}, {{t{x.index}}}, {{t{y.index}}});"
        return Layer(
            op, [call], [("ef_pad_params", name, init)], [], [x.index], [y.index]
        )

    op_padv2 = op_pad
