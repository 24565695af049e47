"""One small graph IR for ONNX and `.tflite` models, with shapes resolved.

Every toolchain command (analyze, check, pack, profile) works on this IR so that the two
formats are handled once. Only what the analyses need is kept: nodes in topological order,
and for every tensor its shape, dtype and whether it is a constant (a weight in flash).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The TFLite flatbuffer reader lives with the runtime (which runs .tflite files); the toolchain
# builds on it, never the other way round.
from emberflow.runtime.tflite_format import (
    TFL_DTYPES,
    ModelError,
    read_tflite_model,
    tflite_op_names,
    tflite_op_types,
    tflite_schema,
)

__all__ = [
    "TFL_DTYPES",
    "Graph",
    "ModelError",
    "Node",
    "TensorInfo",
    "load_graph",
    "read_tflite_model",
    "tflite_op_names",
    "tflite_schema",
]


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...] | None  # None: unknown even after inference
    dtype: str  # numpy dtype name, e.g. "float32", "int8"
    is_const: bool = False
    quant: dict | None = None  # {"scale": [...], "zero_point": [...]} when known
    # A float view of an int8 weight (DequantizeLinear of a constant): constant, but it takes no
    # flash of its own, since the device computes on the int8 weight it views.
    view_of_const: bool = False

    @property
    def size(self) -> int | None:
        if self.shape is None:
            return None
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        if self.size is None or self.dtype in ("resource", "string", "unknown"):
            return 0
        return self.size * np.dtype(self.dtype).itemsize


@dataclass
class Node:
    name: str
    op_type: str
    inputs: list[str]  # "" marks an omitted optional input
    outputs: list[str]
    attrs: dict = field(default_factory=dict)


@dataclass
class Graph:
    name: str
    format: str  # "onnx" or "tflite"
    nodes: list[Node]
    tensors: dict[str, TensorInfo]
    inputs: list[str]
    outputs: list[str]
    path: str = ""
    warnings: list[str] = field(default_factory=list)

    def const_tensors(self) -> list[TensorInfo]:
        return [t for t in self.tensors.values() if t.is_const]

    @property
    def weight_bytes(self) -> int:
        return sum(t.nbytes for t in self.const_tensors() if not t.view_of_const)

    def op_types(self) -> set[str]:
        return {n.op_type for n in self.nodes}


# ONNX TensorProto element types -> numpy dtype names
_ONNX_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "string",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    16: "bfloat16",
}


def parse_shape_overrides(specs: list[str] | None) -> dict[str, tuple[int, ...]]:
    """Turn `name=1x3x48x320` strings into {name: (1, 3, 48, 320)}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs or []:
        name, sep, dims = spec.partition("=")
        try:
            if not sep:
                raise ValueError
            shapes[name.strip()] = tuple(int(d) for d in dims.lower().replace(",", "x").split("x") if d)
        except ValueError:
            raise ModelError(f"bad --shape {spec!r}: write it as NAME=DIMxDIMx..., e.g. x=1x3x48x320") from None
    return shapes


def load_graph(
    path: str | Path,
    shapes: dict[str, tuple[int, ...]] | None = None,
    *,
    probe: bool = True,
    feeds: dict[str, np.ndarray] | None = None,
    strict: bool = True,
) -> Graph:
    """Load an `.onnx` or `.tflite` file into the IR.

    `shapes` fixes dynamic input dimensions (default: 1 for the first axis, 32 for others).
    With `probe`, tensors whose shape static inference cannot resolve are measured by running
    the model once in onnxruntime on `feeds` (default: all-ones inputs of those shapes).
    With `strict`, a shape for a name that is not a model input is an error; without, it is
    ignored (pack applies one --shape list to several models).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        if feeds:
            shapes = {**{k: tuple(np.shape(v)) for k, v in feeds.items()}, **(shapes or {})}
        return _load_onnx(path, shapes or {}, probe, feeds, strict)
    if suffix == ".tflite":
        return _load_tflite(path)
    raise ModelError(f"{path.name}: unknown model format {suffix!r}; emberflow reads .onnx and .tflite files")


def device_dtypes(graph: Graph) -> dict[str, str]:
    """dtype each tensor has on the device.

    In a QDQ graph the float tensors around QuantizeLinear/DequantizeLinear are only a
    simulation of integers: the packer lowers them to the quantized type. Scales and zero
    points are metadata, not tensors the kernels compute on.
    """
    out = {name: t.dtype for name, t in graph.tensors.items()}
    for node in graph.nodes:
        if node.op_type == "DequantizeLinear":
            src = graph.tensors.get(node.inputs[0])
            out[node.outputs[0]] = src.dtype if src else out.get(node.outputs[0], "unknown")
            for meta in node.inputs[1:]:
                out.pop(meta, None)
        elif node.op_type == "QuantizeLinear":
            dst = graph.tensors.get(node.outputs[0])
            out[node.inputs[0]] = dst.dtype if dst else out.get(node.inputs[0], "unknown")
            for meta in node.inputs[1:]:
                out.pop(meta, None)
    return out


# ----------------------------------------------------------------------------- ONNX


def default_input_shape(dims: list, override: tuple[int, ...] | None) -> tuple[int, ...]:
    if override is not None:
        return override
    # Dynamic axes get a small concrete size: batch 1, any other axis 32 (a multiple of the
    # usual downsampling factors, so CNNs stay valid).
    return tuple(d if isinstance(d, int) and d > 0 else (1 if i == 0 else 32) for i, d in enumerate(dims))


def onnx_input_dims(value_info) -> list:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def _load_onnx(path: Path, shapes: dict, probe: bool, feeds: dict | None = None, strict: bool = True) -> Graph:
    import onnx
    from onnx import numpy_helper, shape_inference

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises several kinds
        raise ModelError(f"{path.name}: not a readable ONNX file ({exc})") from exc
    g = model.graph
    init_names = {i.name for i in g.initializer}
    real_inputs = [i for i in g.input if i.name not in init_names]
    unknown = set(shapes) - {i.name for i in real_inputs}
    if unknown and strict:
        raise ModelError(
            f"--shape names {sorted(unknown)} are not inputs of {path.name}; inputs are {[i.name for i in real_inputs]}"
        )
    input_shapes = {i.name: default_input_shape(onnx_input_dims(i), shapes.get(i.name)) for i in real_inputs}
    for vi in real_inputs:  # fix the dims so inference propagates concrete numbers
        dims = vi.type.tensor_type.shape.dim
        if len(dims) != len(input_shapes[vi.name]):
            if dims:
                raise ModelError(f"--shape {vi.name}: model input has rank {len(dims)}, got {input_shapes[vi.name]}")
            for _ in input_shapes[vi.name]:
                dims.add()
        for d, v in zip(dims, input_shapes[vi.name]):
            d.Clear()
            d.dim_value = v
    try:
        inferred = shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # inference can reject valid-but-unusual graphs; keep going without it
        inferred = model
        warn = [f"ONNX shape inference failed ({exc}); shapes come from a probe run"]
    else:
        warn = []
    ig = inferred.graph

    tensors: dict[str, TensorInfo] = {}

    def add_value_info(vi) -> None:
        t = vi.type.tensor_type
        dtype = _ONNX_DTYPES.get(t.elem_type, "unknown")
        shape = None
        if t.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
            if all(d is not None for d in dims):
                shape = tuple(int(d) for d in dims if d is not None)
        tensors[vi.name] = TensorInfo(vi.name, shape, dtype)

    for vi in list(ig.input) + list(ig.value_info) + list(ig.output):
        if vi.name not in init_names:
            add_value_info(vi)
    for init in g.initializer:
        tensors[init.name] = TensorInfo(init.name, tuple(init.dims), _ONNX_DTYPES.get(init.data_type, "unknown"), True)
    for sub_const in _subgraph_constants(g):  # weights inside If/Loop bodies still sit in flash
        tensors.setdefault(sub_const.name, sub_const)

    nodes: list[Node] = []
    for i, proto in enumerate(g.node):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute if a.type not in (5, 10)}
        if proto.op_type == "Constant":
            # A Constant node is a weight in flash, not a computation.
            value = next((a for a in proto.attribute if a.name == "value"), None)
            if value is not None:
                arr = numpy_helper.to_array(value.t)
                tensors[proto.output[0]] = TensorInfo(proto.output[0], tuple(arr.shape), str(arr.dtype), True)
                continue
        nodes.append(
            Node(proto.name or f"{proto.op_type}_{i}", proto.op_type, list(proto.input), list(proto.output), attrs)
        )

    graph = Graph(
        name=g.name or path.stem,
        format="onnx",
        nodes=nodes,
        tensors=tensors,
        inputs=[i.name for i in real_inputs],
        outputs=[o.name for o in g.output],
        path=str(path),
        warnings=warn,
    )
    for name, shp in input_shapes.items():
        tensors[name].shape = shp
    for n in nodes:
        for o in n.outputs:
            tensors.setdefault(o, TensorInfo(o, None, "unknown"))
    _attach_qdq_params(graph, g)
    for n in nodes:
        if n.op_type == "DequantizeLinear" and n.inputs[0] in tensors and tensors[n.inputs[0]].is_const:
            out = tensors[n.outputs[0]]
            out.is_const, out.view_of_const = True, True
    missing = [o for n in nodes for o in n.outputs if o and tensors[o].shape is None]
    if missing and probe:
        _probe_shapes(path, graph, input_shapes, missing, feeds)
    still = [o for n in nodes for o in n.outputs if o and tensors[o].shape is None]
    if still:
        graph.warnings.append(f"{len(still)} tensors have unknown shapes (e.g. {still[0]}); their bytes count as 0")
    return graph


def _subgraph_constants(g) -> list[TensorInfo]:
    from onnx import numpy_helper

    found = []
    for n in g.node:
        for a in n.attribute:
            for sub in ([a.g] if a.type == 5 else []) + list(a.graphs):
                for init in sub.initializer:
                    found.append(
                        TensorInfo(init.name, tuple(init.dims), _ONNX_DTYPES.get(init.data_type, "unknown"), True)
                    )
                for c in sub.node:
                    if c.op_type == "Constant" and c.attribute and c.attribute[0].type == 4:
                        arr = numpy_helper.to_array(c.attribute[0].t)
                        found.append(TensorInfo(c.output[0], tuple(arr.shape), str(arr.dtype), True))
                found.extend(_subgraph_constants(sub))
    return found


def _attach_qdq_params(graph: Graph, g) -> None:
    """Record scale/zero point of QDQ-quantized tensors so pack can describe them."""
    from onnx import numpy_helper

    consts = {i.name: i for i in g.initializer}
    for n in graph.nodes:
        if n.op_type != "QuantizeLinear" or len(n.inputs) < 2:
            continue
        scale = consts.get(n.inputs[1])
        zp = consts.get(n.inputs[2]) if len(n.inputs) > 2 else None
        if scale is None:
            continue
        out = graph.tensors.get(n.outputs[0])
        if out is not None:
            out.quant = {
                "scale": numpy_helper.to_array(scale).ravel().tolist(),
                "zero_point": numpy_helper.to_array(zp).ravel().tolist() if zp is not None else [0],
            }


def probe_feeds(inputs: dict[str, tuple[tuple[int, ...], str]]) -> dict[str, np.ndarray]:
    """All-ones inputs: valid for images, token ids, lengths and scales alike."""
    return {name: np.ones(shape, dtype=dtype) for name, (shape, dtype) in inputs.items()}


def _probe_shapes(path: Path, graph: Graph, input_shapes: dict, missing: list[str], feeds: dict | None) -> None:
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    known_outputs = {o.name for o in model.graph.output}
    for name in missing:
        if name not in known_outputs:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    feeds = feeds or probe_feeds({n: (input_shapes[n], graph.tensors[n].dtype) for n in graph.inputs})
    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # a failed probe comes back as an exception; keep ORT's log off the console
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        values = sess.run(None, feeds)
    except Exception as exc:
        graph.warnings.append(
            f"probe run failed ({str(exc).splitlines()[0][:160]}); "
            "pass --inputs file.npz with real inputs (or --shape NAME=DIMS with shapes the model accepts)"
        )
        return
    for name, val in zip(names, values):
        t = graph.tensors.get(name)
        if t is not None and t.shape is None:
            t.shape = tuple(int(d) for d in np.shape(val))
            if t.dtype == "unknown":
                t.dtype = str(np.asarray(val).dtype)
    graph.warnings.append(f"{len(missing)} tensor shapes were measured by a probe run (static inference could not)")


# ----------------------------------------------------------------------------- TFLite


def _load_tflite(path: Path) -> Graph:
    buf = path.read_bytes()
    try:
        model = read_tflite_model(buf)
    except ModelError as exc:
        raise ModelError(f"{path.name}: {exc}") from None
    sg = model.subgraphs[0]  # the main graph; others are init/called subgraphs
    tensors: dict[str, TensorInfo] = {}
    tname: list[str] = []
    for i, t in enumerate(sg.tensors):
        name = (t.name.decode() if isinstance(t.name, bytes) else t.name) or f"t{i}"
        if name in tensors:
            name = f"{name}#{i}"
        tname.append(name)
        buffer = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        is_const = bool(buffer is not None and buffer.data is not None and len(buffer.data)) or bool(
            buffer is not None and getattr(buffer, "size", 0)
        )
        shape = tuple(int(d) for d in t.shape) if t.shape is not None else ()
        quant = None
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale):
            quant = {"scale": [float(s) for s in q.scale], "zero_point": [int(z) for z in q.zeroPoint]}
        tensors[name] = TensorInfo(name, shape, TFL_DTYPES.get(t.type, "unknown"), is_const, quant)
    nodes = []
    op_types = tflite_op_types(model)
    for i, op in enumerate(sg.operators or []):
        op_type = op_types[op.opcodeIndex]
        ins = [tname[j] if j >= 0 else "" for j in (op.inputs if op.inputs is not None else [])]
        outs = [tname[j] for j in (op.outputs if op.outputs is not None else [])]
        nodes.append(Node(f"{op_type.lower()}_{i}", op_type, ins, outs))
    return Graph(
        name=path.stem,
        format="tflite",
        nodes=nodes,
        tensors=tensors,
        inputs=[tname[i] for i in sg.inputs],
        outputs=[tname[i] for i in sg.outputs],
        path=str(path),
    )
