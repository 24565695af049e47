"""Per-layer complexity: op, shapes, params, MACC, weight and activation bytes (ST-analyze style)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from emberflow.toolchain.graph import Graph, Node

# Ops whose cost is one "MACC" per output element (elementwise and activations).
_ELEMENTWISE = {
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Relu",
    "Clip",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "LeakyRelu",
    "Erf",
    "Pow",
    "Sqrt",
    "Exp",
    "Neg",
    "Where",
    "Max",
    "Min",
    "QuantizeLinear",
    "DequantizeLinear",
    "ADD",
    "SUB",
    "MUL",
    "DIV",
    "RELU",
    "RELU6",
    "LOGISTIC",
    "TANH",
    "HARD_SWISH",
    "LEAKY_RELU",
    "QUANTIZE",
    "DEQUANTIZE",
    "MAXIMUM",
    "MINIMUM",
}


def _elems(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def node_macc(graph: Graph, node: Node) -> int:
    """Multiply-accumulates of one node, from shapes (0 for data movement)."""
    t = graph.tensors
    out = t.get(node.outputs[0]) if node.outputs else None
    if out is None or out.shape is None:
        return 0
    n_out = _elems(out.shape)
    op = node.op_type

    def shape_of(i: int):
        if i < len(node.inputs) and node.inputs[i] in t:
            return t[node.inputs[i]].shape
        return None

    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w = shape_of(3 if op == "QLinearConv" else 1)
        return n_out * _elems(w[1:]) if w else 0
    if op == "ConvTranspose":
        x, w = shape_of(0), shape_of(1)
        return _elems(x) * _elems(w[1:]) if x and w else 0
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul", "Gemm", "BATCH_MATMUL"):
        a = shape_of(0)
        if not a:
            return 0
        k = a[-1] if not (op == "Gemm" and node.attrs.get("transA")) else a[0]
        return n_out * k
    if op in ("CONV_2D", "TRANSPOSE_CONV"):
        w = shape_of(1)  # OHWI
        if op == "TRANSPOSE_CONV":
            w, x = shape_of(1), shape_of(2)
            return _elems(x) * _elems(w[:3]) if x and w else 0
        return n_out * _elems(w[1:]) if w else 0
    if op == "DEPTHWISE_CONV_2D":
        w = shape_of(1)  # 1 x KH x KW x C
        return n_out * w[1] * w[2] if w else 0
    if op == "FULLY_CONNECTED":
        w = shape_of(1)
        return n_out * w[-1] if w else 0
    if op in ("MaxPool", "AveragePool"):
        return n_out * _elems(node.attrs.get("kernel_shape", [1]))
    if op in ("GlobalAveragePool", "ReduceMean", "MEAN", "ReduceSum", "SUM"):
        x = shape_of(0)
        return _elems(x) if x else 0
    if op in ("LSTM", "GRU", "RNN"):
        x, w, r = shape_of(0), shape_of(1), shape_of(2)
        if not (x and w and r):
            return 0
        seq, batch = x[0], x[1]
        return seq * batch * (_elems(w) + _elems(r))  # gates x (input + recurrent) per step
    if op in ("Softmax", "LayerNormalization", "BatchNormalization", "InstanceNormalization", "SOFTMAX"):
        return 4 * n_out
    if op in _ELEMENTWISE:
        return n_out
    return 0


@dataclass
class LayerStats:
    index: int
    name: str
    op: str
    output_shape: str
    params: int
    macc: int
    weight_bytes: int
    activation_bytes: int


def layer_stats(graph: Graph) -> list[LayerStats]:
    rows = []
    seen_consts: set[str] = set()  # a weight shared by several nodes is stored once
    for i, node in enumerate(graph.nodes):
        consts = [
            graph.tensors[x]
            for x in node.inputs
            if x in graph.tensors and graph.tensors[x].is_const and not graph.tensors[x].view_of_const
        ]
        fresh = [c for c in consts if c.name not in seen_consts]
        seen_consts.update(c.name for c in consts)
        outs = [graph.tensors[o] for o in node.outputs if o in graph.tensors]
        shape = outs[0].shape if outs else None
        rows.append(
            LayerStats(
                index=i,
                name=node.name,
                op=node.op_type,
                output_shape="?" if shape is None else "x".join(map(str, shape)) or "scalar",
                params=sum(c.size or 0 for c in fresh),
                macc=node_macc(graph, node),
                weight_bytes=sum(c.nbytes for c in fresh),
                activation_bytes=sum(o.nbytes for o in outs),
            )
        )
    return rows


def summarize(graph: Graph, rows: list[LayerStats]) -> dict:
    io = lambda names: [
        {"name": n, "shape": list(graph.tensors[n].shape or []), "dtype": graph.tensors[n].dtype} for n in names
    ]
    return {
        "model": graph.path,
        "format": graph.format,
        "nodes": len(graph.nodes),
        "inputs": io(graph.inputs),
        "outputs": io(graph.outputs),
        "params": sum(r.params for r in rows),
        "macc": sum(r.macc for r in rows),
        "weight_bytes": graph.weight_bytes,
        "activation_bytes": sum(r.activation_bytes for r in rows),
        "op_histogram": _op_histogram(graph),
        "warnings": graph.warnings + _control_flow_warning(graph),
    }


def _control_flow_warning(graph: Graph) -> list[str]:
    nodes = [n.name for n in graph.nodes if n.op_type in ("If", "Loop", "Scan")]
    if not nodes:
        return []
    return [
        f"{len(nodes)} control-flow node(s) ({', '.join(nodes[:3])}): the compute inside their subgraphs is not "
        "counted in MACC or per-layer rows; their weights are counted"
    ]


def _op_histogram(graph: Graph) -> dict[str, int]:
    hist: dict[str, int] = {}
    for n in graph.nodes:
        hist[n.op_type] = hist.get(n.op_type, 0) + 1
    return dict(sorted(hist.items(), key=lambda kv: -kv[1]))


def rows_as_dicts(rows: list[LayerStats]) -> list[dict]:
    return [asdict(r) for r in rows]
