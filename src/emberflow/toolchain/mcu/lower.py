"""Lower each TFLite operator to calls of the shared C kernels with const parameter structs.

Every number a kernel needs at run time is computed here, once, as TFLite-Micro's Prepare
would (see quantmath.py): multipliers and shifts, folded biases, activation ranges, padding,
slice strides. The C side only loops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from emberflow.errors import EmberflowError
from emberflow.toolchain.mcu import quantmath as qm
from emberflow.toolchain.mcu.tflite_model import Op, Subgraph, Tensor


class CompileError(EmberflowError, ValueError):
    """The model cannot be compiled; the message names the node and says what to do."""


@dataclass
class ConstArray:
    cname: str
    ctype: str
    values: npt.NDArray[np.integer]


@dataclass
class Layer:
    op: Op
    # C statements; {tN} is the pointer to tensor N, {scratch} the layer's scratch
    calls: list[str]
    # (C type, name, initializer) of the const parameter structs
    params: list[tuple[str, str, str]] = field(default_factory=list)
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
MAX_RANK = 5  # ef_copy_params / ef_pad_params hold 5 dimensions


def _arr(values: Iterable[int]) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def _requant_init(prefix: str, mults: list[int], shifts: list[int]) -> tuple[str, list[ConstArray]]:
    per_channel = len(set(zip(mults, shifts, strict=True))) > 1
    if not per_channel:
        mults, shifts = mults[:1], shifts[:1]
    consts = [
        ConstArray(f"{prefix}_mult", "int32_t", np.array(mults, np.int64)),
        ConstArray(f"{prefix}_shift", "int8_t", np.array(shifts, np.int64)),
    ]
    return f"{{{prefix}_mult, {prefix}_shift, {int(per_channel)}}}", consts


def _padding(padding: int, in_size: int, k: int, stride: int, dilation: int, out_size: int) -> int:
    """TFLite SAME (0) puts the odd padding pixel at the end; VALID (1) has none."""
    if padding == 1:
        return 0
    eff = (k - 1) * dilation + 1
    total = max((out_size - 1) * stride + eff - in_size, 0)
    return total // 2


def _slice_index(index: int, step: int, size: int) -> int:
    """One end of a STRIDED_SLICE axis as TFLM resolves it: negative counts from the
    back, then clamped to the axis in the step's direction."""
    if index < 0:
        index += size
    return min(max(index, 0), size) if step > 0 else min(max(index, -1), size - 1)


class Lowering:
    def __init__(self, sg: Subgraph, prefix: str) -> None:
        self.sg = sg
        self.prefix = prefix

    def t(self, i: int) -> Tensor:
        return self.sg.tensors[i]

    def name(self, op: Op) -> str:
        """The C name of the layer's parameter struct (and the prefix of its arrays)."""
        return f"{self.prefix}_L{op.index}"

    def fail(self, op: Op, why: str) -> CompileError:
        out = self.t(op.outputs[0]).name if op.outputs else ""
        return CompileError(f"{op.op_type} {op.name}{f' ({out})' if out else ''}: {why}")

    def const(self, op: Op, i: int, what: str) -> npt.NDArray[np.generic]:
        """The contents of input tensor `i`, which must be constant."""
        data = self.t(i).data
        if data is None:
            raise self.fail(op, f"{what} must be constant")
        return data

    def need_int8(self, op: Op, *tensors: Tensor) -> None:
        for x in tensors:
            if x.dtype == "float32":
                raise self.fail(
                    op,
                    "float tensors: compile needs an int8 model; quantize it first "
                    "(`emberflow quantize` then `emberflow export-tflite`, or the TFLite converter)",
                )
            if x.dtype != "int8":
                raise self.fail(op, f"{x.dtype} tensor {x.name} is not supported (int8 only)")

    def lower(self, op: Op) -> Layer:
        handler: Callable[[Op], Layer] | None = getattr(self, "op_" + op.op_type.lower(), None)
        if op.op_type not in SUPPORTED_OPS or handler is None:
            raise self.fail(
                op,
                f"op {op.op_type} is not supported by emberflow compile; supported: {', '.join(SUPPORTED_OPS)}",
            )
        return handler(op)

    def kernel(
        self,
        op: Op,
        kernel: str,
        ptype: str,
        init: str,
        ins: Sequence[Tensor],
        out: Tensor,
        *,
        consts: list[ConstArray] | None = None,
        macc: int = 0,
        scratch: int | None = None,
    ) -> Layer:
        """A layer that is one call `kernel(&params, in..., out[, scratch])`, its
        parameters a const struct of type `ptype` initialised with `init`. A layer
        given `scratch` passes its scratch buffer (or 0 when it needs none)."""
        name = self.name(op)
        args = [f"&{name}", *(f"{{t{x.index}}}" for x in ins), f"{{t{out.index}}}"]
        if scratch is not None:
            args.append("{scratch}" if scratch else "0")
        return Layer(
            op,
            [f"{kernel}({', '.join(args)});"],
            [(ptype, name, init)],
            consts or [],
            [x.index for x in ins],
            [out.index],
            scratch or 0,
            macc,
        )

    # ---------------------------------------------------------------- matrix products
    def _gemm(
        self,
        op: Op,
        x: Tensor,
        w: Tensor,
        y: Tensor,
        w2d: npt.NDArray[np.generic],
        activation: int,
    ) -> tuple[str, list[ConstArray]]:
        """The ef_gemm_params every weighted layer starts with: weights (rows = output
        channels), the bias with the input offset folded in, requantization, clamp."""
        name = self.name(op)
        n, k = w2d.shape
        if w.dtype != "int8" or not w.is_const:
            raise self.fail(op, "weights must be constant int8")
        if any(z != 0 for z in w.zero_point):
            raise self.fail(op, "weights must be symmetric (zero point 0), as TFLite int8 specifies")
        bias = np.zeros(n, np.int64)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            if self.t(op.inputs[2]).dtype != "int32":
                raise self.fail(op, "bias must be a constant int32 tensor")
            bias = self.const(op, op.inputs[2], "bias").astype(np.int64).ravel()
        # the input offset times each weight row, folded into the bias (wraps like int32 accumulation)
        folded = bias + (-x.zp) * w2d.astype(np.int64).sum(axis=1)
        folded = ((folded + 2**31) % 2**32) - 2**31
        mults, shifts = qm.per_channel_multipliers(x.sc, w.scale, y.sc, n)
        rq, rq_consts = _requant_init(name, mults, shifts)
        lo, hi = qm.activation_range(activation, y.sc, y.zp, y.dtype)
        consts = [
            ConstArray(f"{name}_w", "int8_t", w2d.astype(np.int64).ravel()),
            ConstArray(f"{name}_b", "int32_t", folded),
            *rq_consts,
        ]
        init = f"{{{name}_w, {name}_b, {rq}, {k}, {n}, {y.zp}, {lo}, {hi}}}"
        return init, consts

    def op_conv_2d(self, op: Op) -> Layer:
        x, w, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        self.need_int8(op, x, y)
        o = op.int_opt
        _, in_h, in_w, in_c = x.shape
        cout, kh, kw, cin = w.shape
        _, out_h, out_w, _ = y.shape
        if cin != in_c:
            raise self.fail(
                op,
                f"grouped convolution ({in_c} input channels, filter has {cin}) is not supported",
            )
        sh, sw = o("strideH"), o("strideW")
        dh, dw = o("dilationHFactor", 1), o("dilationWFactor", 1)
        pt = _padding(o("padding"), in_h, kh, sh, dh, out_h)
        pl = _padding(o("padding"), in_w, kw, sw, dw, out_w)
        weights = self.const(op, op.inputs[1], "weights").reshape(cout, -1)
        gemm, consts = self._gemm(op, x, w, y, weights, o("fusedActivationFunction", 0))
        init = (
            f"{{{gemm}, {in_h}, {in_w}, {in_c}, {out_h}, {out_w}, {kh}, {kw}, {sh}, {sw}, {dh}, {dw}, "
            f"{pt}, {pl}, {x.zp}}}"
        )
        k = kh * kw * cin
        contiguous = dw == 1 and (kh == 1 or (kw == in_w and dh == 1))
        inside = (
            pt == 0 and pl == 0 and (out_h - 1) * sh + (kh - 1) * dh < in_h and (out_w - 1) * sw + (kw - 1) * dw < in_w
        )
        scratch = 0 if contiguous and inside else 2 * k
        return self.kernel(
            op,
            "ef_conv_s8",
            "ef_conv_params",
            init,
            [x],
            y,
            consts=consts,
            macc=y.size * k,
            scratch=scratch,
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
        weights = self.const(op, op.inputs[1], "weights")
        gemm, consts = self._gemm(op, x, w, y, weights, op.int_opt("fusedActivationFunction", 0))
        batches = x.size // k
        init = f"{{{gemm}, {batches}}}"
        return self.kernel(
            op,
            "ef_fc_s8",
            "ef_fc_params",
            init,
            [x],
            y,
            consts=consts,
            macc=batches * n * k,
        )

    def op_depthwise_conv_2d(self, op: Op) -> Layer:
        x, w, y = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        self.need_int8(op, x, y)
        if w.dtype != "int8":
            raise self.fail(op, "weights must be constant int8")
        weights = self.const(op, op.inputs[1], "weights")
        o = op.int_opt
        _, in_h, in_w, in_c = x.shape
        _, kh, kw, out_c = w.shape
        _, out_h, out_w, _ = y.shape
        dm = out_c // in_c
        sh, sw = o("strideH"), o("strideW")
        dh, dw = o("dilationHFactor", 1), o("dilationWFactor", 1)
        pt = _padding(o("padding"), in_h, kh, sh, dh, out_h)
        pl = _padding(o("padding"), in_w, kw, sw, dw, out_w)
        name = self.name(op)
        bias = np.zeros(out_c, np.int64)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            bias = self.const(op, op.inputs[2], "bias").astype(np.int64).ravel()
        mults, shifts = qm.per_channel_multipliers(x.sc, w.scale, y.sc, out_c)
        rq, rq_consts = _requant_init(name, mults, shifts)
        lo, hi = qm.activation_range(o("fusedActivationFunction", 0), y.sc, y.zp, y.dtype)
        consts = [
            ConstArray(f"{name}_w", "int8_t", weights.astype(np.int64).ravel()),
            ConstArray(f"{name}_b", "int32_t", bias),
            *rq_consts,
        ]
        init = (
            f"{{{name}_w, {name}_b, {rq}, {in_h}, {in_w}, {in_c}, {out_h}, {out_w}, {out_c}, {kh}, {kw}, "
            f"{sh}, {sw}, {dh}, {dw}, {dm}, {pt}, {pl}, {-x.zp}, {y.zp}, {lo}, {hi}}}"
        )
        return self.kernel(
            op,
            "ef_dwconv_s8",
            "ef_dwconv_params",
            init,
            [x],
            y,
            consts=consts,
            macc=y.size * kh * kw,
        )

    # ---------------------------------------------------------------- pooling and reductions
    def _pool(self, op: Op, kernel: str) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        self.need_int8(op, x, y)
        if (x.sc, x.zp) != (y.sc, y.zp):
            raise self.fail(op, "input and output quantization differ (TFLM pools keep the input's)")
        o = op.int_opt
        n, in_h, in_w, c = x.shape
        _, out_h, out_w, _ = y.shape
        kh, kw, sh, sw = o("filterHeight"), o("filterWidth"), o("strideH"), o("strideW")
        pt = _padding(o("padding"), in_h, kh, sh, 1, out_h)
        pl = _padding(o("padding"), in_w, kw, sw, 1, out_w)
        lo, hi = qm.activation_range(o("fusedActivationFunction", 0), y.sc, y.zp, y.dtype)
        init = f"{{{in_h}, {in_w}, {c}, {out_h}, {out_w}, {n}, {kh}, {kw}, {sh}, {sw}, {pt}, {pl}, {lo}, {hi}}}"
        return self.kernel(op, kernel, "ef_pool_params", init, [x], y, macc=y.size * kh * kw)

    def op_average_pool_2d(self, op: Op) -> Layer:
        return self._pool(op, "ef_avgpool_s8")

    def op_max_pool_2d(self, op: Op) -> Layer:
        return self._pool(op, "ef_maxpool_s8")

    def op_mean(self, op: Op) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        self.need_int8(op, x, y)
        axes_data = self.const(op, op.inputs[1], "axes")
        axes = sorted({int(a) % len(x.shape) for a in axes_data.ravel()})
        if axes != list(range(axes[0], axes[-1] + 1)):
            raise self.fail(op, f"reducing over non-adjacent axes {axes} is not supported")
        outer = int(np.prod(x.shape[: axes[0]], dtype=np.int64))
        reduce = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
        inner = int(np.prod(x.shape[axes[-1] + 1 :], dtype=np.int64))
        mult, shift = qm.mean_multiplier(x.sc, y.sc, reduce)
        init = f"{{{outer}, {reduce}, {inner}, {x.zp}, {y.zp}, {mult}, {shift}, -128, 127}}"
        return self.kernel(op, "ef_mean_s8", "ef_mean_params", init, [x], y, macc=x.size)

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
            return [0 if shape[i] == 1 and out_shape[i] != 1 else dense[i] for i in range(4)]

        lo, hi = qm.activation_range(op.int_opt("fusedActivationFunction", 0), y.sc, y.zp, y.dtype)
        p = params
        init = (
            f"{{{_arr(out_shape)}, {_arr(strides(a))}, {_arr(strides(b))}, {-a.zp}, {-b.zp}, {y.zp}, "
            f"{p['in1_mult']}, {p['in2_mult']}, {p['out_mult']}, {p['in1_shift']}, {p['in2_shift']}, "
            f"{p['out_shift']}, {p['left_shift']}, {lo}, {hi}}}"
        )
        return self.kernel(op, kernel, "ef_binary_params", init, [a, b], y, macc=y.size)

    def op_add(self, op: Op) -> Layer:
        a, b, y = (self.t(i) for i in (*op.inputs[:2], op.outputs[0]))
        return self._binary(op, "ef_add_s8", qm.add_params(a.sc, b.sc, y.sc))

    def op_mul(self, op: Op) -> Layer:
        a, b, y = (self.t(i) for i in (*op.inputs[:2], op.outputs[0]))
        return self._binary(op, "ef_mul_s8", qm.mul_params(a.sc, b.sc, y.sc))

    def _q8_output(self, op: Op, x: Tensor, y: Tensor) -> None:
        self.need_int8(op, x, y)
        if (y.zp, y.sc) != (-128, 1.0 / 256):
            raise self.fail(
                op,
                f"int8 {op.op_type.lower()} output must have scale 1/256 and zero point -128",
            )

    def op_softmax(self, op: Op) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        self._q8_output(op, x, y)
        p = qm.softmax_params(op.float_opt("beta", 1.0), x.sc)
        depth = x.shape[-1]
        init = f"{{{x.size // depth}, {depth}, {p['input_multiplier']}, {p['input_left_shift']}, {p['diff_min']}}}"
        return self.kernel(op, "ef_softmax_s8", "ef_softmax_params", init, [x], y, macc=4 * x.size)

    def op_logistic(self, op: Op) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        self._q8_output(op, x, y)
        p = qm.logistic_params(x.sc)
        init = f"{{{x.size}, {x.zp}, {p['range_radius']}, {p['input_multiplier']}, {p['input_left_shift']}}}"
        return self.kernel(op, "ef_logistic_s8", "ef_logistic_params", init, [x], y, macc=x.size)

    def op_quantize(self, op: Op) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        if x.dtype == "float32":
            if y.dtype != "int8":
                raise self.fail(op, f"float32 to {y.dtype} is not supported")
            init = f"{{{x.size}, {y.zp}, {y.sc!r}f}}"
            return self.kernel(op, "ef_quantize_f32", "ef_float_params", init, [x], y, macc=x.size)
        integers = ("int8", "uint8", "int16")
        if x.dtype not in integers or y.dtype not in integers:
            raise self.fail(op, f"{x.dtype} to {y.dtype} is not supported")
        mult, shift = qm.quantize_multiplier(x.sc / y.sc)
        same_scale = mult == 1 << 30 and shift == 1
        flip = same_scale and ((x.dtype, y.dtype, x.zp - y.zp) in (("int8", "uint8", -128), ("uint8", "int8", 128)))
        init = f"{{{x.size}, {x.zp}, {y.zp}, {mult}, {shift}, {C_TYPES[x.dtype]}, {C_TYPES[y.dtype]}, {int(flip)}}}"
        return self.kernel(op, "ef_requantize", "ef_requantize_params", init, [x], y, macc=x.size)

    def op_dequantize(self, op: Op) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        if x.dtype != "int8" or y.dtype != "float32":
            raise self.fail(op, f"{x.dtype} to {y.dtype} is not supported")
        init = f"{{{x.size}, {x.zp}, {x.sc!r}f}}"
        return self.kernel(op, "ef_dequantize_s8", "ef_float_params", init, [x], y, macc=x.size)

    # ---------------------------------------------------------------- data movement
    def _copy_init(
        self,
        op: Op,
        x: Tensor,
        starts: list[int],
        counts: list[int],
        steps: list[int],
    ) -> str:
        rank = len(x.shape)
        if rank > MAX_RANK:
            raise self.fail(op, f"more than {MAX_RANK} dimensions are not supported")
        dense = [int(np.prod(x.shape[i + 1 :], dtype=np.int64)) for i in range(rank)]
        pad = MAX_RANK - rank
        count = [1] * pad + counts
        stride = [0] * pad + [steps[i] * dense[i] for i in range(rank)]
        start = sum(starts[i] * dense[i] for i in range(rank))
        return f"{{{_arr(count)}, {_arr(stride)}, {start}, {x.itemsize}}}"

    def op_strided_slice(self, op: Op) -> Layer:
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        begin, end, strides = (self.const(op, i, "begin, end and strides") for i in op.inputs[1:4])
        o = op.int_opt
        if o("ellipsisMask", 0) or o("newAxisMask", 0) or o("offset", 0):
            raise self.fail(op, "ellipsis, new-axis masks and offset mode are not supported")
        starts, counts, steps = [], [], []
        for axis, size in enumerate(x.shape):
            bit = 1 << axis
            step = int(strides[axis])
            # a masked begin/end runs to the limit of the axis in the step's direction
            whole = (qm.INT_LOWEST, qm.INT32_MAX)
            lowest, highest = whole if step > 0 else whole[::-1]
            first = lowest if o("beginMask", 0) & bit else int(begin[axis])
            start = _slice_index(first, step, size)
            if o("shrinkAxisMask", 0) & bit:
                stop = start + 1
            else:
                last = highest if o("endMask", 0) & bit else int(end[axis])
                stop = _slice_index(last, step, size)
            span = stop - start if step > 0 else start - stop
            count = max(0, -(-span // abs(step)))
            starts.append(start)
            counts.append(count)
            steps.append(step)
        if int(np.prod(counts)) != y.size:
            raise self.fail(
                op,
                f"slice of {counts} elements does not match the output shape {list(y.shape)}",
            )
        init = self._copy_init(op, x, starts, counts, steps)
        return self.kernel(op, "ef_copy", "ef_copy_params", init, [x], y)

    def _split(self, op: Op, x: Tensor, axis: int, sizes: list[int]) -> Layer:
        """SPLIT and SPLIT_V: one strided copy per output, along `axis`."""
        if len(sizes) != len(op.outputs) or sum(sizes) != x.shape[axis]:
            raise self.fail(
                op,
                f"{len(op.outputs)} outputs of sizes {sizes} do not split the axis of {x.shape[axis]}",
            )
        calls, params, offset = [], [], 0
        for j, (out_i, size) in enumerate(zip(op.outputs, sizes, strict=True)):
            starts = [0] * len(x.shape)
            starts[axis] = offset
            counts = list(x.shape)
            counts[axis] = size
            name = f"{self.name(op)}_{j}"
            init = self._copy_init(op, x, starts, counts, [1] * len(x.shape))
            params.append(("ef_copy_params", name, init))
            calls.append(f"ef_copy(&{name}, {{t{x.index}}}, {{t{out_i}}});")
            offset += size
        return Layer(op, calls, params, [], [x.index], list(op.outputs))

    def _axis(self, op: Op, x: Tensor, i: int) -> int:
        return int(self.const(op, i, "axis").ravel()[0]) % len(x.shape)

    def op_split_v(self, op: Op) -> Layer:
        x = self.t(op.inputs[0])
        axis = self._axis(op, x, op.inputs[2])
        sizes = [int(s) for s in self.const(op, op.inputs[1], "size_splits").ravel()]
        if -1 in sizes:  # the one part left open takes the rest
            sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
        return self._split(op, x, axis, sizes)

    def op_split(self, op: Op) -> Layer:
        x = self.t(op.inputs[1])
        axis = self._axis(op, x, op.inputs[0])
        n = len(op.outputs)
        return self._split(op, x, axis, [x.shape[axis] // n] * n)

    def op_concatenation(self, op: Op) -> Layer:
        ins = [self.t(i) for i in op.inputs]
        y = self.t(op.outputs[0])
        if len(ins) > 8:
            raise self.fail(op, f"{len(ins)} inputs; at most 8 are supported")
        if op.int_opt("fusedActivationFunction", 0):
            raise self.fail(op, "a fused activation on CONCATENATION is not supported")
        for x in ins:
            if x.scale and (x.sc, x.zp) != (y.sc, y.zp):
                raise self.fail(
                    op,
                    f"input {x.name} has another scale or zero point than the output "
                    "(TFLM's int8 CONCATENATION requires them equal)",
                )
        axis = op.int_opt("axis", 0) % len(y.shape)
        outer = int(np.prod(y.shape[:axis], dtype=np.int64))
        inner = [int(np.prod(x.shape[axis:], dtype=np.int64)) * x.itemsize for x in ins]
        name = self.name(op)
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
        x, y = self.t(op.inputs[0]), self.t(op.outputs[0])
        pads = self.const(op, op.inputs[1], "paddings").reshape(-1, 2).astype(int)
        value = y.zp
        if op.op_type == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            value = int(self.const(op, op.inputs[2], "the pad value").ravel()[0])
        rank = len(x.shape)
        if rank > MAX_RANK:
            raise self.fail(op, f"more than {MAX_RANK} dimensions are not supported")
        out_dense = [int(np.prod(y.shape[i + 1 :], dtype=np.int64)) for i in range(rank)]
        start = sum(int(pads[i][0]) * out_dense[i] for i in range(rank))
        count = [1] * (MAX_RANK - rank) + list(x.shape)
        stride = [0] * (MAX_RANK - rank) + out_dense
        init = f"{{{_arr(count)}, {_arr(stride)}, {start}, {y.size}, {value}, {x.itemsize}}}"
        return self.kernel(op, "ef_pad", "ef_pad_params", init, [x], y)

    op_padv2 = op_pad
