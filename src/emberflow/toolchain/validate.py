"""Does the candidate compute what the reference did? ST-style metrics and a per-layer search.

Metrics per output (error e = candidate - reference, over all samples):
  acc   top-1 agreement along the last axis (classifier-like outputs only)
  rmse  sqrt(mean(e^2))         mae   mean(|e|)          max   max(|e|)
  l2r   ||e|| / ||reference||   mean/std of e
  nse   1 - sum(e^2) / sum((ref - mean(ref))^2)   (1 is perfect)
  cos   cosine similarity of the flattened tensors
  lsb   histogram of integer differences: both sides integer, or an integer candidate against
        the float reference requantized with the candidate's output scale

Models of different formats can be compared (fp32 ONNX vs int8 .tflite): inputs are quantized
with the candidate's input scale/zero point and moved from NCHW to NHWC when the candidate
expects that, and integer outputs with known scale are dequantized before the float metrics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from emberflow.runtime import Engine, TensorSpec


@dataclass
class OutputMetrics:
    name: str
    samples: int
    acc: float | None
    rmse: float
    mae: float
    l2r: float
    mean: float
    std: float
    nse: float
    cos: float
    max_abs: float
    lsb_histogram: dict[int, int] | None = None


def compare(ref: np.ndarray, cand: np.ndarray, name: str = "", samples: int = 1) -> OutputMetrics:
    lsb = None
    if ref.dtype.kind in "iu" and cand.dtype.kind in "iu":
        diff = cand.astype(np.int64) - ref.astype(np.int64)
        values, counts = np.unique(diff, return_counts=True)
        lsb = {int(v): int(c) for v, c in zip(values, counts)}
    r = ref.astype(np.float64).ravel()
    c = cand.astype(np.float64).ravel()
    if r.shape != c.shape:
        raise ValueError(f"output {name}: reference has {ref.shape}, candidate {cand.shape}")
    e = c - r
    ss_ref = float(np.sum((r - r.mean()) ** 2))
    nr, nc = float(np.linalg.norm(r)), float(np.linalg.norm(c))
    acc = None
    if ref.ndim >= 1 and ref.shape[-1] > 1 and ref.size // ref.shape[-1] >= 1:
        acc = float(np.mean(ref.reshape(-1, ref.shape[-1]).argmax(-1) == cand.reshape(-1, cand.shape[-1]).argmax(-1)))
    return OutputMetrics(
        name=name,
        samples=samples,
        acc=acc,
        rmse=float(np.sqrt(np.mean(e**2))),
        mae=float(np.mean(np.abs(e))),
        l2r=float(np.linalg.norm(e) / nr) if nr else float(np.linalg.norm(e)),
        mean=float(e.mean()),
        std=float(e.std()),
        nse=1.0 - float(np.sum(e**2)) / ss_ref if ss_ref else float(np.sum(e**2) == 0),
        cos=float(r @ c / (nr * nc)) if nr and nc else float(nr == nc),
        max_abs=float(np.max(np.abs(e))) if e.size else 0.0,
        lsb_histogram=lsb,
    )


def adapt_layout(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """NCHW reference data for an NHWC candidate (a .tflite exported from ONNX)."""
    if x.ndim == 4 and len(spec.shape) == 4:
        fits = lambda shape: all(w is None or w == g for w, g in zip(spec.shape, shape))
        if not fits(x.shape) and fits((x.shape[0], x.shape[2], x.shape[3], x.shape[1])):
            return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x


def quantize_input(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    x = adapt_layout(x, spec)
    if x.dtype == spec.dtype:
        return x
    if spec.dtype.kind in "iu" and x.dtype.kind == "f" and spec.quant:
        info = np.iinfo(spec.dtype)
        q = np.round(x / spec.quant["scale"][0]) + spec.quant["zero_point"][0]
        return np.clip(q, info.min, info.max).astype(spec.dtype)
    return x.astype(spec.dtype)


def dequantize_output(y: np.ndarray, spec: TensorSpec, ref: np.ndarray) -> np.ndarray:
    if ref.dtype.kind == "f" and y.dtype.kind in "iu" and spec.quant:
        y = (y.astype(np.float32) - spec.quant["zero_point"][0]) * spec.quant["scale"][0]
    if y.ndim == 4 and y.shape != ref.shape and y.transpose(0, 3, 1, 2).shape == ref.shape:
        y = y.transpose(0, 3, 1, 2)  # NHWC candidate output back to the reference's NCHW
    return y


@dataclass
class ValidationResult:
    reference: str
    candidate: str
    samples: int
    outputs: list[OutputMetrics]
    layers: list[dict] = field(default_factory=list)
    first_divergence: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def run_pair(reference: Engine, candidate: Engine, samples: list[dict[str, np.ndarray]]) -> list[OutputMetrics]:
    if len(reference.outputs) != len(candidate.outputs):
        raise ValueError(
            f"reference has {len(reference.outputs)} outputs, candidate {len(candidate.outputs)}: these are not the "
            "same model"
        )
    refs: list[list[np.ndarray]] = [[] for _ in reference.outputs]
    cands: list[list[np.ndarray]] = [[] for _ in candidate.outputs]
    lsb: list[list[np.ndarray]] = [[] for _ in candidate.outputs]  # int candidate vs requantized float reference
    for sample in samples:
        ref_out = reference([sample[s.name] for s in reference.inputs])
        feeds = [quantize_input(sample[rs.name], cs) for rs, cs in zip(reference.inputs, candidate.inputs)]
        cand_out = candidate(feeds)
        for i, (r, c) in enumerate(zip(ref_out, cand_out)):
            r, c = np.asarray(r), np.asarray(c)
            refs[i].append(r)
            cands[i].append(dequantize_output(c, candidate.outputs[i], r))
            q = candidate.outputs[i].quant
            if r.dtype.kind == "f" and c.dtype.kind in "iu" and q:
                info = np.iinfo(c.dtype)
                rq = np.clip(np.round(r / q["scale"][0]) + q["zero_point"][0], info.min, info.max).astype(np.int64)
                lsb[i].append(c.astype(np.int64).ravel() - rq.ravel())
    metrics = [
        compare(_gather(refs[i]), _gather(cands[i]), reference.outputs[i].name, len(samples)) for i in range(len(refs))
    ]
    for m, diffs in zip(metrics, lsb):
        if diffs:
            values, counts = np.unique(np.concatenate(diffs), return_counts=True)
            m.lsb_histogram = {int(v): int(n) for v, n in zip(values, counts)}
    return metrics


def _gather(arrays: list[np.ndarray]) -> np.ndarray:
    """Stack per-sample outputs along the batch axis (flatten when their shapes differ)."""
    if all(a.ndim >= 1 and a.shape[1:] == arrays[0].shape[1:] for a in arrays):
        return np.concatenate(arrays, axis=0)
    return np.concatenate([a.ravel() for a in arrays])


def _expose_all(path: str) -> tuple[bytes, list[str]]:
    """The ONNX model with every node output added as a graph output, and the names of the
    activations in topological order (not the float views of int8 weights in a QDQ graph)."""
    import onnx

    model = onnx.load(path)
    inits = {i.name for i in model.graph.initializer}
    existing = {o.name for o in model.graph.output}
    order = []
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        weight_view = node.op_type == "DequantizeLinear" and node.input[0] in inits
        for out in node.output:
            if out and out not in existing:
                model.graph.output.append(onnx.ValueInfoProto(name=out))
                existing.add(out)
            if out and not weight_view:
                order.append(out)
    return model.SerializeToString(), order


QDQ_SUFFIXES = ("_QuantizeLinear_Output", "_DequantizeLinear_Output", "_QuantizeLinear_Input")


def _onnx_values(path: str, sample: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every intermediate tensor of an ONNX model (basic optimisations: QDQ kept as written)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    model, order = _expose_all(path)
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    values = sess.run(None, {i.name: sample[i.name] for i in sess.get_inputs()})
    return dict(zip([o.name for o in sess.get_outputs()], values)), order


def _tflite_values(path: str, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every tensor TFLite-Micro computed (kPreserveAllTensors), dequantized, NHWC moved back to NCHW."""
    from tflite_micro.python.tflite_micro import runtime

    from emberflow.runtime.backends.tflm import capture_native_output, tflm_io_specs
    from emberflow.toolchain.graph import read_tflite_model

    data = Path(path).read_bytes()
    inputs, _ = tflm_io_specs(data)
    with capture_native_output():
        it = runtime.Interpreter.from_bytes(
            data,
            arena_size=max(1 << 20, 16 * len(data)),
            intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors,
        )
        for i, (spec, x) in enumerate(zip(inputs, sample.values())):
            it.set_input(quantize_input(np.asarray(x), spec), i)
        it.invoke()
    model = read_tflite_model(data)
    sg = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    from_nhwc = {}  # 2-D outputs of a RESHAPE of a 4-D NHWC tensor: their order is (H, W, C)
    for op in sg.operators or []:
        if codes[op.opcodeIndex] == 22 and len(sg.tensors[op.inputs[0]].shape) == 4:  # 22: RESHAPE
            from_nhwc[op.outputs[0]] = [int(d) for d in sg.tensors[op.inputs[0]].shape]
    values = {}
    for i, t in enumerate(sg.tensors):
        name = t.name.decode() if isinstance(t.name, bytes) else t.name
        got = it.GetTensor(i, 0)
        arr = np.asarray(got["tensor_data"]).reshape([int(d) for d in got["shape"]])
        q = t.quantization
        if arr.dtype.kind in "iu" and q is not None and q.scale is not None and len(q.scale) == 1:
            arr = (arr.astype(np.float32) - q.zeroPoint[0]) * q.scale[0]
        if i in from_nhwc:
            n, h, w, c = from_nhwc[i]
            arr = arr.reshape(n, h, w, c).transpose(0, 3, 1, 2).reshape(arr.shape)
        values[name] = arr.transpose(0, 3, 1, 2) if arr.ndim == 4 else arr
    return values


def per_layer(
    reference: str, candidate: str, sample: dict[str, np.ndarray], tolerance: float = 0.99
) -> tuple[list[dict], dict | None]:
    """Compare every intermediate tensor the two graphs share; name the first that diverges.

    The reference is ONNX; the candidate ONNX or a .tflite from `emberflow export-tflite`
    (TFLite-Micro keeps all tensors; int8 values are dequantized and NHWC moved to NCHW).
    In a QDQ graph the float tensor that keeps an original name can be the value *before* the
    folded activation (a Conv+Relu becomes Conv -> QuantizeLinear whose range does the clip),
    so a same-name compare reports bogus errors. The quantized value of tensor T is
    `T_DequantizeLinear_Output` (in the exported .tflite: `T_QuantizeLinear_Output`); that is
    what gets compared whenever it exists.
    """
    if not reference.endswith(".onnx") or not candidate.endswith((".onnx", ".tflite")):
        raise ValueError("--per-layer compares an ONNX reference with an ONNX or .tflite candidate")
    ref_vals, ref_order = _onnx_values(reference, sample)
    if candidate.endswith(".tflite"):
        cand_vals = _tflite_values(candidate, sample)
        suffix = "_QuantizeLinear_Output"  # the exporter names int8 tensors after the Q node (values dequantized)
    else:
        cand_vals, _ = _onnx_values(candidate, sample)
        suffix = "_DequantizeLinear_Output"  # in ONNX the Q output holds raw integers; DQ gives the value
    rows, first = [], None
    for name in ref_order:
        if name.endswith(QDQ_SUFFIXES):  # compared under the name of the tensor they quantize
            continue
        # A QDQ side is compared on the quantized value of the tensor, never on the float
        # that keeps its name (which can be the pre-activation value).
        ref_name = f"{name}_DequantizeLinear_Output" if f"{name}_DequantizeLinear_Output" in ref_vals else name
        cand_name = next((c for c in (f"{name}{suffix}", name) if c in cand_vals), None)
        if cand_name is None:
            continue
        r, c = np.asarray(ref_vals[ref_name]), np.asarray(cand_vals[cand_name])
        if r.shape != c.shape or r.dtype.kind not in "fiu" or c.dtype.kind not in "fiu" or r.size == 0:
            continue
        m = compare(r, c, name)
        row = {
            "tensor": name,
            "compared_with": cand_name,
            "shape": list(r.shape),
            "cos": m.cos,
            "max_abs": m.max_abs,
            "rmse": m.rmse,
            "ok": bool(m.cos >= tolerance),
        }
        rows.append(row)
        if first is None and not row["ok"]:
            first = row
    return rows, first


def validate(
    reference: str | Path,
    candidate: str | Path,
    samples: list[dict[str, np.ndarray]],
    *,
    per_layer_check: bool = False,
    tolerance: float = 0.99,
) -> ValidationResult:
    # The reference runs with basic graph optimisations only: a QDQ reference then computes its
    # quantization exactly as written, not through onnxruntime's fused int8 kernels (which can
    # saturate on x86). The candidate runs as it would be deployed.
    ref, cand = Engine(reference, optimization="basic"), Engine(candidate)
    result = ValidationResult(str(reference), str(candidate), len(samples), run_pair(ref, cand, samples))
    if per_layer_check:
        result.layers, result.first_divergence = per_layer(str(reference), str(candidate), samples[0], tolerance)
    return result
