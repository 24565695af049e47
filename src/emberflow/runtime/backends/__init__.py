"""Backend registry. Entries are import strings, so a backend's SDK loads only when used."""

from __future__ import annotations

import importlib

from emberflow.runtime.backends.base import Backend, TensorSpec

_REGISTRY: dict[str, tuple[str, tuple[str, ...]]] = {
    "onnxruntime": ("emberflow.runtime.backends.onnx:OnnxRuntimeBackend", ("onnx",)),
    "tflm": ("emberflow.runtime.backends.tflm:TFLiteMicroBackend", ("tflite",)),
}


def register_backend(name: str, target: str, formats: tuple[str, ...]) -> None:
    """Add a backend: `target` is "module:Class"; `formats` the model formats it loads."""
    _REGISTRY[name] = (target, tuple(formats))


def backend_names() -> list[str]:
    return list(_REGISTRY)


def backend_for(fmt: str, name: str | None = None) -> type[Backend]:
    if name is None:
        name = next((n for n, (_, fmts) in _REGISTRY.items() if fmt in fmts), None)
        if name is None:
            raise ValueError(f"no backend loads {fmt!r} models; registered: {', '.join(_REGISTRY)}")
    elif name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; registered: {', '.join(_REGISTRY)}")
    target, fmts = _REGISTRY[name]
    if fmt not in fmts:
        raise ValueError(f"backend {name!r} loads {', '.join(fmts)} models, not {fmt!r}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["Backend", "TensorSpec", "backend_for", "backend_names", "register_backend"]
