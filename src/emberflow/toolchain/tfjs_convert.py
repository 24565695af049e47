"""TF.js graph model -> ONNX, without TensorFlow: `emberflow convert MODEL.json -o MODEL.onnx`.

How it works. Nodes are visited in dependency order; each TensorFlow op is written as ONNX ops by
a handler in `tfjs_ops`. Nodes whose inputs are all constant are computed here with numpy
(constant folding), so shape arithmetic such as NanoDet's `SparseToDense` never reaches the ONNX
file. Anything without a handler is refused up front, naming every unsupported op and its nodes.

Layout. TensorFlow convolutions are NHWC, ONNX's are NCHW. Rather than wrapping every conv in
two Transposes, a value remembers a pending permutation (`Val.perm`: the TensorFlow tensor is
`transpose(onnx_tensor, perm)`). Elementwise ops, concat, pad and split work on the ONNX tensor
directly and pass the permutation on (constants are permuted to match), explicit Transposes only
compose it, and a real Transpose is written only where an op needs TensorFlow's layout
(Reshape, graph outputs, ...). A MobileNet-style graph then has Transposes only at its edges.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from emberflow.toolchain.tfjs_model import TfjsError, TfjsModel, TfNode

OPSET = 17
NHWC_FROM_NCHW = (0, 2, 3, 1)  # a TF NHWC tensor is transpose(nchw, this)


def compose(p: tuple[int, ...], q: tuple[int, ...]) -> tuple[int, ...]:
    """transpose(transpose(x, p), q) == transpose(x, compose(p, q))."""
    return tuple(p[i] for i in q)


def inverse(p: tuple[int, ...]) -> tuple[int, ...]:
    out = [0] * len(p)
    for i, axis in enumerate(p):
        out[axis] = i
    return tuple(out)


def is_identity(p: tuple[int, ...] | None) -> bool:
    return p is None or all(i == a for i, a in enumerate(p))


@dataclass
class Val:
    """One TensorFlow tensor during conversion: a constant, or an ONNX value with a pending layout."""

    onnx: str | None
    dtype: Any
    perm: tuple[int, ...] | None = None  # tf tensor = transpose(onnx tensor, perm)
    const: np.ndarray | None = None

    @property
    def is_const(self) -> bool:
        return self.const is not None

    @classmethod
    def of(cls, array: np.ndarray) -> Val:
        return cls(None, array.dtype.type, None, np.asarray(array))


Handler = Callable[["Converter", TfNode, list[Val]], list[Val]]
Fold = Callable[[TfNode, list[np.ndarray]], list[np.ndarray]]
OPS: dict[str, Handler] = {}
FOLDS: dict[str, Fold] = {}


F = TypeVar("F", bound=Callable[..., Any])


def _registrar(table: dict[str, Any]) -> Callable[..., Callable[[F], F]]:
    def names(*ops: str) -> Callable[[F], F]:
        def register(fn: F) -> F:
            for name in ops:
                table[name] = fn
            return fn

        return register

    return names


op = _registrar(OPS)  # @op("Conv2D", ...): the ONNX writer of these TF ops
fold = _registrar(FOLDS)  # @fold("Cast", ...): their numpy version, for constant inputs


@dataclass
class ConversionReport:
    output: Path
    ops: dict[str, int]  # TF op -> count in the source graph
    folded: int  # nodes computed at conversion time
    onnx_ops: dict[str, int]
    inputs: list[str]
    outputs: list[str]
    bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "bytes": self.bytes,
            "tf_ops": self.ops,
            "folded_nodes": self.folded,
            "onnx_ops": self.onnx_ops,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "notes": self.notes,
        }


class Converter:
    def __init__(self, model: TfjsModel):
        self.model = model
        self.nodes: list[Any] = []  # onnx NodeProto
        self.initializers: list[Any] = []
        self.values: dict[str, list[Val]] = {}
        self._names: Counter[str] = Counter()
        self._transposes: dict[tuple[str, tuple[int, ...]], str] = {}
        self._small: dict[tuple[str, tuple[int, ...], bytes], str] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}  # static ONNX shapes inferred so far
        self._graph_inputs: list[Any] = []
        self.folded = 0

    # --- building blocks for the op handlers ------------------------------------------------
    def fresh(self, hint: str) -> str:
        base = hint.replace(":", "_")
        self._names[base] += 1
        return base if self._names[base] == 1 else f"{base}__{self._names[base] - 1}"

    def emit(self, op_type: str, inputs: list[str], hint: str, outputs: int = 1, **attrs: Any) -> list[str]:
        from onnx import helper

        names = [self.fresh(f"{hint}/{op_type}" if outputs == 1 else f"{hint}/{op_type}_{i}") for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=self.fresh(f"{hint}#{op_type}"), **attrs))
        return names

    def emit1(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        return self.emit(op_type, inputs, hint, 1, **attrs)[0]

    def constant(self, array: np.ndarray, hint: str = "const") -> str:
        from onnx import numpy_helper

        array = np.ascontiguousarray(array)
        small = array.size <= 16  # shared: every Clip and reshape would otherwise add its own copy
        key = (array.dtype.str, array.shape, array.tobytes()) if small else None
        if key is not None and key in self._small:
            return self._small[key]
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        if key is not None:
            self._small[key] = name
        return name

    def tf(self, v: Val, hint: str = "v") -> str:
        """The ONNX name of `v` in TensorFlow's own layout (writes a Transpose if one is pending)."""
        if v.const is not None:
            return self.constant(v.const, f"{hint}/const")
        assert v.onnx is not None
        return self._transpose(v.onnx, v.perm, hint)

    def in_layout(self, v: Val, want: tuple[int, ...], hint: str = "v") -> str:
        """The ONNX name of X with tf tensor = transpose(X, want), e.g. NCHW for a conv (want = NHWC_FROM_NCHW)."""
        if v.const is not None:
            return self.constant(np.transpose(v.const, inverse(want)), f"{hint}/const")
        assert v.onnx is not None
        have = v.perm or tuple(range(len(want)))
        if len(have) != len(want):
            raise TfjsError(f"{hint}: a rank-{len(have)} tensor where a rank-{len(want)} one is needed")
        return self._transpose(v.onnx, compose(have, inverse(want)), hint)

    def const_like(self, c: np.ndarray, perm: tuple[int, ...] | None, hint: str) -> str | None:
        """A constant that broadcasts against a tensor with pending `perm`, in that tensor's ONNX
        layout; None if it cannot (higher rank than the tensor)."""
        if is_identity(perm) or c.ndim == 0:
            return self.constant(c, f"{hint}/const")
        assert perm is not None
        if c.ndim > len(perm):
            return None
        full = c.reshape((1,) * (len(perm) - c.ndim) + c.shape)
        return self.constant(np.transpose(full, inverse(perm)), f"{hint}/const")

    def static_shape(self, v: Val) -> tuple[int, ...] | None:
        """The TF-layout shape of `v` if it is static, by ONNX shape inference over what is built so far."""
        if v.is_const:
            assert v.const is not None
            return tuple(v.const.shape)
        assert v.onnx is not None
        if v.onnx not in self._shapes:
            self._infer_shapes(v.onnx)
        dims = self._shapes.get(v.onnx)
        if dims is None:
            return None
        return tuple(dims[i] for i in v.perm) if v.perm is not None else dims

    def _infer_shapes(self, target: str) -> None:
        import onnx
        from onnx import helper

        graph = helper.make_graph(
            self.nodes,
            "partial",
            self._graph_inputs,
            [helper.make_tensor_value_info(target, 0, None)],
            self.initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        for info in [*inferred.graph.value_info, *inferred.graph.output]:
            dims = info.type.tensor_type.shape.dim
            if info.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
                self._shapes[info.name] = tuple(int(d.dim_value) for d in dims)

    def _transpose(self, name: str, perm: tuple[int, ...] | None, hint: str) -> str:
        if is_identity(perm):
            return name
        assert perm is not None
        key = (name, perm)
        if key not in self._transposes:
            self._transposes[key] = self.emit1("Transpose", [name], hint, perm=list(perm))
        return self._transposes[key]

    # --- the driver ------------------------------------------------------------------------
    def ref(self, tensor: str) -> Val:
        node, _, index = tensor.partition(":")
        outs = self.values.get(node)
        if outs is None:
            raise TfjsError(f"tensor {tensor!r} is read before its node was converted")
        k = int(index or 0)
        if k >= len(outs):
            raise TfjsError(f"node {node!r} has {len(outs)} output(s); {tensor!r} asks for output {k}")
        return outs[k]

    def convert(self) -> Any:
        from onnx import helper

        missing: dict[str, list[str]] = {}
        for n in self.model.nodes:
            if n.op not in OPS and n.op not in FOLDS and n.op not in ("Const", "Placeholder"):
                missing.setdefault(n.op, []).append(n.name)
        if missing:
            listing = "; ".join(
                f"{op} (node {names[0]!r}" + (f" and {len(names) - 1} more" if len(names) > 1 else "") + ")"
                for op, names in sorted(missing.items())
            )
            raise TfjsError(f"unsupported TF.js op(s): {listing}. Supported: {', '.join(sorted({*OPS, *FOLDS}))}")
        order = topological(self.model.nodes)
        graph_inputs = self._graph_inputs
        for n in order:
            if n.op == "Const":
                if n.name not in self.model.weights:
                    raise TfjsError(f"constant {n.name!r} has no entry in the weights manifest")
                self.values[n.name] = [Val.of(self.model.weights[n.name])]
                continue
            if n.op == "Placeholder":
                dtype = n.attr_dtype("dtype")
                sig = next(s for s in self.model.inputs if s.name == n.name)
                dims = [d if d is not None else f"{n.name}_d{i}" for i, d in enumerate(sig.shape)]
                graph_inputs.append(helper.make_tensor_value_info(n.name, _onnx_type(dtype), dims or None))
                self.values[n.name] = [Val(n.name, dtype)]
                continue
            args = [self.ref(i) for i in n.inputs]
            consts = [a.const for a in args if a.const is not None]
            if len(consts) == len(args) and n.op in FOLDS:
                self.values[n.name] = [Val.of(np.asarray(r)) for r in FOLDS[n.op](n, consts)]
                self.folded += 1
                continue
            if n.op not in OPS:
                raise TfjsError(
                    f"node {n.name!r}: {n.op} is supported only on constant inputs (computed while "
                    "converting), and this one reads a graph input"
                )
            self.values[n.name] = OPS[n.op](self, n, args)
        graph_outputs, names = [], []
        for ref in self.model.outputs:
            v = self.ref(ref)
            name = self.fresh(ref.split(":")[0] if ref.endswith(":0") or ":" not in ref else ref.replace(":", "_"))
            self.nodes.append(helper.make_node("Identity", [self.tf(v, name)], [name], name=f"{name}#out"))
            graph_outputs.append(helper.make_tensor_value_info(name, _onnx_type(v.dtype), None))
            names.append(name)
        graph = helper.make_graph(self.nodes, self.model.path.stem, graph_inputs, graph_outputs, self.initializers)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="emberflow convert (TF.js graph model)"
        )
        model.ir_version = 8
        return model


def topological(nodes: list[TfNode]) -> list[TfNode]:
    """Nodes in dependency order (inputs first). TF control flow (Enter/Merge/NextIteration) makes
    cycles; those graphs are refused with the node where the cycle closes."""
    by_name = {n.name: n for n in nodes}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    order: list[TfNode] = []
    for root in nodes:
        if state.get(root.name):
            continue
        stack: list[tuple[TfNode, int]] = [(root, 0)]
        state[root.name] = 1
        while stack:
            n, i = stack[-1]
            if i == len(n.inputs):
                stack.pop()
                state[n.name] = 2
                order.append(n)
                continue
            stack[-1] = (n, i + 1)
            ref = n.inputs[i]
            src = by_name.get(ref.split(":")[0])
            if src is None:
                raise TfjsError(f"node {n.name!r} reads {ref!r}, which no node produces")
            seen = state.get(src.name)
            if seen == 1:
                raise TfjsError(
                    f"the graph has a cycle through node {src.name!r} ({src.op}): TF control flow "
                    "(loops) is not supported; only loop-free graph models convert"
                )
            if seen is None:
                state[src.name] = 1
                stack.append((src, 0))
    return order


def _onnx_type(dtype: Any) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
