"""`emberflow convert MODEL.json -o MODEL.onnx`: TF.js graph models into ONNX, without TensorFlow.

The converter (`tfjs_convert`) walks the graph; the ONNX writer of each TF op is a handler in
`tfjs_ops`, which registers itself in the converter's tables when imported, here.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from emberflow.toolchain import tfjs_ops  # noqa: F401  (registers the op handlers)
from emberflow.toolchain.tfjs_convert import ConversionReport, Converter
from emberflow.toolchain.tfjs_model import TfjsError, load_tfjs

__all__ = ["ConversionReport", "TfjsError", "convert_tfjs"]


def convert_tfjs(
    model_json: str | Path, output: str | Path, shapes: dict[str, tuple[int, ...]] | None = None
) -> ConversionReport:
    """Convert a TF.js graph model to an ONNX file; checked by onnx's checker and shape inference.
    `shapes` fixes input sizes the model leaves open (static shapes let shape arithmetic fold)."""
    import onnx

    model = load_tfjs(model_json)
    for name, dims in (shapes or {}).items():
        sig = next((s for s in model.inputs if s.name == name), None)
        if sig is None:
            raise TfjsError(
                f"--shape names {name!r}, but the model's inputs are {', '.join(s.name for s in model.inputs)}"
            )
        sig.shape = list(dims)
    conv = Converter(model)
    proto = conv.convert()
    try:
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
        onnx.checker.check_model(proto)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:  # a converter bug
        raise TfjsError(f"the converted graph does not check: {e}") from None
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    data = proto.SerializeToString()
    tmp = output.with_name(output.name + ".partial")
    tmp.write_bytes(data)
    tmp.replace(output)  # never leave a half-written model under the final name
    return ConversionReport(
        output=output,
        ops=dict(Counter(n.op for n in model.nodes)),
        folded=conv.folded,
        onnx_ops=dict(Counter(n.op_type for n in proto.graph.node)),
        inputs=[i.name for i in proto.graph.input],
        outputs=[o.name for o in proto.graph.output],
        bytes=len(data),
    )
