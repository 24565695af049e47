"""The Engine: one small API over onnxruntime, TFLite-Micro and pluggable NPU runtimes."""

from emberflow.runtime.backends import Backend, TensorSpec, backend_names, register_backend
from emberflow.runtime.engine import Engine, EngineError

__all__ = ["Backend", "Engine", "EngineError", "TensorSpec", "backend_names", "register_backend"]
