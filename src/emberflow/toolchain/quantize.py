"""Static int8 post-training quantization through onnxruntime.quantization (QDQ format).

QDQ keeps ordinary float ops between QuantizeLinear/DequantizeLinear pairs; it is the form
TVM, ST's tools and our packer accept, and onnx shape inference understands it. Weights are
symmetric int8 (per output channel by default), activations int8 from calibration.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emberflow.errors import EmberflowError

CALIBRATION_METHODS = ("minmax", "entropy", "percentile", "distribution")


class QuantizeError(EmberflowError, ValueError):
    pass


@dataclass
class QuantizeSummary:
    source: str
    output: str
    bytes_before: int
    bytes_after: int
    calibration_samples: int
    method: str
    per_channel: bool
    reduce_range: bool
    quantized_nodes: int
    nodes_after: int

    @property
    def ratio(self) -> float:
        return self.bytes_after / self.bytes_before

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": round(self.ratio, 4)}


class _Reader:
    """CalibrationDataReader over materialised samples, reporting progress as it goes."""

    def __init__(self, samples: list[dict[str, np.ndarray]], on_sample: Callable[[], None] | None) -> None:
        self._it = iter(samples)
        self._on_sample = on_sample

    def get_next(self):
        sample = next(self._it, None)
        if sample is not None and self._on_sample:
            self._on_sample()
        return sample

    def rewind(self) -> None:  # some calibrators call it; a fresh pass is not needed for MinMax
        pass


def preprocess(model_path: Path, out_path: Path) -> Path:
    """ORT's recommended pre-pass (optimisation + ONNX shape inference), without sympy.

    The symbolic shape pass needs sympy, which onnxruntime no longer installs; static ONNX
    shape inference is enough for the quantizer. If the pre-pass rejects a graph, quantize
    the original: the pre-pass only improves what gets fused, not correctness.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(model_path), str(out_path), skip_symbolic_shape=True)
        return out_path
    except Exception:
        return model_path


def quantize_model(
    model: str | Path,
    output: str | Path,
    samples: list[dict[str, np.ndarray]],
    *,
    method: str = "minmax",
    per_channel: bool = True,
    reduce_range: bool = False,
    symmetric_activations: bool = False,
    exclude_nodes: list[str] | None = None,
    op_types: list[str] | None = None,
    on_sample: Callable[[], None] | None = None,
) -> QuantizeSummary:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model, output = Path(model), Path(output)
    if model.suffix.lower() != ".onnx":
        raise QuantizeError(
            f"{model.name}: quantize reads ONNX models; a .tflite is already quantized by its converter"
        )
    if method not in CALIBRATION_METHODS:
        raise QuantizeError(f"unknown calibration method {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
    if not samples:
        raise QuantizeError("no calibration samples; pass --calib DIR, file.npz or random[:N]")
    calib = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
        "distribution": CalibrationMethod.Distribution,
    }[method]
    with tempfile.TemporaryDirectory(prefix="emberflow-quant-") as tmp:
        prepped = preprocess(model, Path(tmp) / "prep.onnx")
        # The calibrator writes its augmented model to the working directory: keep it in tmp.
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            quantize_static(
                str(prepped),
                str(output.resolve() if output.is_absolute() else Path(cwd) / output),
                _Reader(samples, on_sample),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=calib,
                nodes_to_exclude=exclude_nodes or None,
                op_types_to_quantize=op_types or None,
                extra_options={"ActivationSymmetric": symmetric_activations, "WeightSymmetric": True},
            )
        except Exception as exc:
            raise QuantizeError(f"onnxruntime quantization failed: {str(exc).strip()[:500]}") from exc
        finally:
            os.chdir(cwd)
    q = onnx.load(str(output))
    n_q = sum(1 for n in q.graph.node if n.op_type == "QuantizeLinear")
    return QuantizeSummary(
        source=str(model),
        output=str(output),
        bytes_before=model.stat().st_size,
        bytes_after=output.stat().st_size,
        calibration_samples=len(samples),
        method=method,
        per_channel=per_channel,
        reduce_range=reduce_range,
        quantized_nodes=n_q,
        nodes_after=len(q.graph.node),
    )
