"""Lower a QDQ int8 ONNX CNN (as `emberflow quantize` writes it) to an int8 .tflite for TFLite-Micro.

This is what turns the quantized ONNX into the artifact an MCU runs, so `emberflow validate`
can compare the ONNX against the real TFLite-Micro kernels. Scope, on purpose small: Conv
(plain and depthwise), MaxPool, AveragePool, GlobalAveragePool (as MEAN), Flatten/Reshape
before a fully connected layer, Gemm/MatMul with constant weights, Add. Anything else is refused with
the node's name.

How a QDQ graph maps: every float op sits between DequantizeLinear (its inputs) and
QuantizeLinear (its output); the int8 tensors around it keep their scale/zero point, weights are
the int8 initializers behind the DQ nodes, biases the int32 ones. A Relu folded into the Q range
(zero point -128) needs no op. Layout goes from NCHW to NHWC: 4-D shapes are permuted, conv
weights OIHW -> OHWI, and a fully connected layer after Flatten gets its weight columns
reordered from (C, H, W) to (H, W, C).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emberflow.errors import EmberflowError
from emberflow.toolchain.tflite_writer import TFL_TYPES, S, TfliteBuilder


class ExportError(EmberflowError, ValueError):
    pass


def _nhwc(shape) -> list[int]:
    return [shape[0], shape[2], shape[3], shape[1]] if len(shape) == 4 else list(shape)


class _Lowering:
    def __init__(self, model) -> None:
        from onnx import numpy_helper, shape_inference

        self.model = shape_inference.infer_shapes(model)
        g = self.model.graph
        self.consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for n in g.node:
            if n.op_type == "Constant":
                self.consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        self.shapes = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
            self.shapes[vi.name] = [d if d > 0 else 1 for d in dims]
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.b = TfliteBuilder()
        self.index: dict[str, int] = {}  # quantized ONNX tensor name -> tflite tensor index
        self.layout4d: dict[str, bool] = {}

    # --- helpers -------------------------------------------------------------------------
    def qparams(self, node) -> tuple[np.ndarray, np.ndarray]:
        scale = self.consts[node.input[1]]
        zp = self.consts[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros_like(scale, np.int8)
        return scale, zp

    def activation(self, qname: str) -> int:
        """The tflite tensor of a QuantizeLinear output (int8 activation)."""
        if qname not in self.index:
            q = self.producer[qname]
            scale, zp = self.qparams(q)
            shape = self.shapes.get(qname) or self.shapes.get(q.input[0])
            if shape is None:
                raise ExportError(f"{qname}: no shape known for this activation (run shape inference first)")
            self.layout4d[qname] = len(shape) == 4
            self.index[qname] = self.b.tensor(qname, _nhwc(shape), TFL_TYPES[str(zp.dtype)], scale=scale, zero_point=zp)
        return self.index[qname]

    def dq_source(self, name: str, node):
        """For a float input of a compute node: its DequantizeLinear and what that reads."""
        dq = self.producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear":
            raise ExportError(
                f"{node.op_type} {node.name}: input {name} is not dequantized int8; quantize the model "
                "with `emberflow quantize` (QDQ) first"
            )
        return dq, dq.input[0]

    def output_q(self, node):
        outs = self.consumers.get(node.output[0], [])
        q = next((c for c in outs if c.op_type == "QuantizeLinear"), None)
        if q is None:
            raise ExportError(f"{node.op_type} {node.name}: output is not quantized (no QuantizeLinear after it)")
        return q.output[0]

    def weight(self, name: str, node) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        dq, src = self.dq_source(name, node)
        if src not in self.consts:
            raise ExportError(f"{node.op_type} {node.name}: weights must be constant")
        scale, zp = self.qparams(dq)
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        return self.consts[src], np.atleast_1d(scale), np.atleast_1d(zp), axis

    # --- ops -----------------------------------------------------------------------------
    def conv(self, node) -> None:
        attrs = {a.name: a for a in node.attribute}
        group = attrs["group"].i if "group" in attrs else 1
        strides = list(attrs["strides"].ints) if "strides" in attrs else [1, 1]
        pads = list(attrs["pads"].ints) if "pads" in attrs else [0, 0, 0, 0]
        dil = list(attrs["dilations"].ints) if "dilations" in attrs else [1, 1]
        _, x = self.dq_source(node.input[0], node)
        w, w_scale, _, _ = self.weight(node.input[1], node)
        cout, cin_g, kh, kw = w.shape
        padding = self._padding(node, pads, kh, kw, strides)
        xi = self.activation(x)
        depthwise = group > 1
        if depthwise and not (group == cout and cin_g == 1):
            raise ExportError(
                f"Conv {node.name}: grouped convolution with {group} groups is not supported (only depthwise)"
            )
        if depthwise:
            wt = w.transpose(1, 2, 3, 0)  # (C,1,kh,kw) -> (1,kh,kw,C)
            w_axis = 3
        else:
            wt = w.transpose(0, 2, 3, 1)  # OIHW -> OHWI
            w_axis = 0
        wi = self.b.tensor(
            f"{node.name}/weights",
            wt.shape,
            S.TensorType.INT8,
            wt.astype(np.int8),
            w_scale,
            np.zeros(len(w_scale), int),
            w_axis,
        )
        inputs = [xi, wi, self._bias(node, 2, cout)]
        yi = self.activation(self.output_q(node))
        if depthwise:
            opt = S.DepthwiseConv2DOptionsT()
            opt.depthMultiplier = 1
            code, opt_type = S.BuiltinOperator.DEPTHWISE_CONV_2D, S.BuiltinOptions.DepthwiseConv2DOptions
        else:
            opt = S.Conv2DOptionsT()
            code, opt_type = S.BuiltinOperator.CONV_2D, S.BuiltinOptions.Conv2DOptions
        opt.padding, opt.strideH, opt.strideW = padding, strides[0], strides[1]
        opt.dilationHFactor, opt.dilationWFactor = dil[0], dil[1]
        opt.fusedActivationFunction = S.ActivationFunctionType.NONE  # a folded Relu lives in the output range
        self.b.op(code, inputs, [yi], opt_type, opt)

    def _padding(self, node, pads, kh, kw, strides) -> int:
        if not any(pads):
            return S.Padding.VALID
        same = all(p == (k - 1) // 2 for p, k in ((pads[0], kh), (pads[1], kw))) and pads[:2] == pads[2:]
        if same and all(s == 1 for s in strides) and kh % 2 and kw % 2:
            return S.Padding.SAME
        h, w = self.shapes[node.input[0]][2:] if node.input[0] in self.shapes else (None, None)
        raise ExportError(
            f"{node.op_type} {node.name}: padding {pads} with strides {strides} has no TFLite SAME/VALID "
            f"equivalent here (input {h}x{w}); pad explicitly before export"
        )

    def _bias(self, node, i: int, n: int) -> int:
        if len(node.input) <= i or not node.input[i]:
            return self.b.tensor(
                f"{node.name}/bias", (n,), S.TensorType.INT32, np.zeros(n, np.int32), np.ones(n), np.zeros(n, int)
            )
        dq, src = self.dq_source(node.input[i], node)
        scale, _ = self.qparams(dq)
        data = self.consts[src].astype(np.int32)
        return self.b.tensor(
            f"{node.name}/bias", data.shape, S.TensorType.INT32, data, np.atleast_1d(scale), np.zeros(data.size, int)
        )

    def pool(self, node) -> None:
        attrs = {a.name: a for a in node.attribute}
        _, x = self.dq_source(node.input[0], node)
        xi = self.activation(x)
        yi = self.activation(self.output_q(node))
        if node.op_type == "GlobalAveragePool":
            # MEAN over H and W requantizes to the output scale in one step (a pool plus a
            # QUANTIZE would round twice).
            axes = self.b.tensor(f"{node.name}/axes", (2,), S.TensorType.INT32, np.array([1, 2], np.int32))
            ropt = S.ReducerOptionsT()
            ropt.keepDims = True
            self.b.op(S.BuiltinOperator.MEAN, [xi, axes], [yi], S.BuiltinOptions.ReducerOptions, ropt)
            return
        opt = S.Pool2DOptionsT()
        k = list(attrs["kernel_shape"].ints)
        s = list(attrs["strides"].ints) if "strides" in attrs else [1, 1]
        pads = list(attrs["pads"].ints) if "pads" in attrs else [0, 0, 0, 0]
        opt.padding = self._padding(node, pads, k[0], k[1], s)
        opt.filterHeight, opt.filterWidth, opt.strideH, opt.strideW = k[0], k[1], s[0], s[1]
        code = S.BuiltinOperator.MAX_POOL_2D if node.op_type == "MaxPool" else S.BuiltinOperator.AVERAGE_POOL_2D
        x_q, y_q = self.b.tensors[xi].quantization, self.b.tensors[yi].quantization
        if list(x_q.scale) == list(y_q.scale) and list(x_q.zeroPoint) == list(y_q.zeroPoint):
            self.b.op(code, [xi], [yi], S.BuiltinOptions.Pool2DOptions, opt)
            return
        # TFLM pools keep the input's scale; requantize to the QDQ output range with QUANTIZE.
        y_shape = self.b.tensors[yi].shape
        tmp = self.b.tensor(
            f"{node.name}/pooled", y_shape, S.TensorType.INT8, scale=x_q.scale, zero_point=x_q.zeroPoint
        )
        self.b.op(code, [xi], [tmp], S.BuiltinOptions.Pool2DOptions, opt)
        self.b.op(S.BuiltinOperator.QUANTIZE, [tmp], [yi])

    def reshape(self, node) -> None:
        _, x = self.dq_source(node.input[0], node)
        y = self.output_q(node)
        out_shape = self.shapes[y]
        if len(out_shape) != 2:
            raise ExportError(
                f"{node.op_type} {node.name}: only flattening to 2-D (before a fully connected layer) is supported"
            )
        xi, yi = self.activation(x), self.activation(y)
        shape = self.b.tensor(f"{node.name}/shape", (2,), S.TensorType.INT32, np.array(out_shape, np.int32))
        opt = S.ReshapeOptionsT()
        opt.newShape = list(out_shape)
        self.b.op(S.BuiltinOperator.RESHAPE, [xi, shape], [yi], S.BuiltinOptions.ReshapeOptions, opt)
        self.flattened_from = getattr(self, "flattened_from", {})
        if self.layout4d.get(x):
            self.flattened_from[y] = self.shapes[x]  # (N, C, H, W) before the flatten

    def fully_connected(self, node) -> None:
        attrs = {a.name: a for a in node.attribute}
        _, x = self.dq_source(node.input[0], node)
        w, w_scale, _, axis = self.weight(node.input[1], node)
        if node.op_type == "MatMul" or not (attrs.get("transB") and attrs["transB"].i):
            w, axis = w.T, 1 - axis  # ONNX keeps (in, out); TFLite wants (out, in)
        if getattr(attrs.get("transA"), "i", 0):
            raise ExportError(f"Gemm {node.name}: transA is not supported")
        if len(w_scale) > 1 and axis != 0:
            raise ExportError(f"{node.op_type} {node.name}: per-channel scales must be per output unit")
        src = getattr(self, "flattened_from", {}).get(x)
        if src is not None:  # the flatten ran on NHWC data: reorder the weight columns to match
            _, c, h, wd = src
            w = w.reshape(w.shape[0], c, h, wd).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
        wi = self.b.tensor(
            f"{node.name}/weights",
            w.shape,
            S.TensorType.INT8,
            np.ascontiguousarray(w).astype(np.int8),
            w_scale,
            np.zeros(len(w_scale), int),
            0,
        )
        inputs = [self.activation(x), wi, self._bias(node, 2, w.shape[0])]
        yi = self.activation(self.output_q(node))
        opt = S.FullyConnectedOptionsT()
        self.b.op(S.BuiltinOperator.FULLY_CONNECTED, inputs, [yi], S.BuiltinOptions.FullyConnectedOptions, opt)

    def add(self, node) -> None:
        ins = [self.activation(self.dq_source(i, node)[1]) for i in node.input]
        yi = self.activation(self.output_q(node))
        opt = S.AddOptionsT()
        self.b.op(S.BuiltinOperator.ADD, ins, [yi], S.BuiltinOptions.AddOptions, opt)

    def run(self) -> bytes:
        g = self.model.graph
        handlers = {
            "Conv": self.conv,
            "MaxPool": self.pool,
            "AveragePool": self.pool,
            "GlobalAveragePool": self.pool,
            "Flatten": self.reshape,
            "Reshape": self.reshape,
            "Gemm": self.fully_connected,
            "MatMul": self.fully_connected,
            "Add": self.add,
        }
        for node in g.node:
            if node.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant"):
                continue
            if node.op_type not in handlers:
                raise ExportError(
                    f"op {node.op_type} ({node.name}) is not supported by the TFLite exporter; "
                    f"supported: {', '.join(handlers)}"
                )
            handlers[node.op_type](node)
        inputs = []
        for vi in g.input:
            if vi.name in self.consts:
                continue
            q = next((c for c in self.consumers.get(vi.name, []) if c.op_type == "QuantizeLinear"), None)
            if q is None:
                raise ExportError(
                    f"input {vi.name} is not quantized right away; quantize the model with `emberflow quantize`"
                )
            inputs.append(self.activation(q.output[0]))
        outputs = []
        for vi in g.output:
            dq = self.producer.get(vi.name)
            if dq is None or dq.op_type != "DequantizeLinear":
                raise ExportError(f"output {vi.name} is not produced by DequantizeLinear")
            outputs.append(self.activation(dq.input[0]))
        return self.b.build(inputs, outputs, "emberflow export-tflite")


def export_tflite(model_path: str | Path, output: str | Path) -> int:
    """Write the .tflite; returns its size. Inputs and outputs are int8 with the QDQ scales."""
    import onnx

    data = _Lowering(onnx.load(str(model_path))).run()
    Path(output).write_bytes(data)
    return len(data)
