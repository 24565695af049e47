"""onnxruntime backend (the default for .onnx)."""

from __future__ import annotations

import numpy as np

from emberflow.runtime.backends.base import Backend, TensorSpec

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32,
    "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,  # numpy arrays of str or bytes (KServe BYTES)
}


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or []))
    return TensorSpec(arg.name, shape, np.dtype(_ORT_TYPES.get(arg.type, np.float32)))


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    formats = ("onnx",)

    def __init__(
        self,
        model: bytes,
        device: str | None = None,
        *,
        threads: int = 0,
        profile: bool = False,
        optimization: str = "all",
        **options,
    ) -> None:
        """`optimization`: "all" (default, fused kernels), "basic" (keeps QDQ as float math: exact
        quantization semantics, used as a validation reference) or "none"."""
        import onnxruntime as ort

        levels = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }
        if optimization not in levels:
            raise ValueError(f"optimization must be one of {', '.join(levels)}, not {optimization!r}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = levels[optimization]
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        opts.enable_profiling = profile
        providers = {None: ["CPUExecutionProvider"], "cpu": ["CPUExecutionProvider"]}.get(device, [device])
        self.session = ort.InferenceSession(model, opts, providers=providers)
        self.inputs = [_spec(a) for a in self.session.get_inputs()]
        self.outputs = [_spec(a) for a in self.session.get_outputs()]
        self._input_names = [s.name for s in self.inputs]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        # onnxruntime reads C-contiguous numpy buffers in place: no copy on the way in.
        return self.session.run(None, dict(zip(self._input_names, feeds)))


def with_shared_weights(model: bytes, weights: bytes) -> bytes:
    """Put a bundle's shared initializers back into one stage's ONNX graph."""
    import onnx

    m = onnx.load_from_string(model)
    m.graph.initializer.extend(onnx.load_from_string(weights).graph.initializer)
    return m.SerializeToString()
