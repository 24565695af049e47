"""The backend interface: what a runtime must offer to plug into the Engine.

A backend loads one graph (one stage of one net) from bytes and runs it:

    class MyNpuBackend(Backend):
        name = "mynpu"
        formats = ("bmodel",)            # model formats it can load

        def __init__(self, model: bytes, device: str | None = None, **options): ...
        inputs: list[TensorSpec]         # in the order run() receives them
        outputs: list[TensorSpec]
        def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]: ...

The Engine checks names, shapes and dtypes before calling `run`, so a backend receives
exactly one C-contiguous array per input, in `inputs` order, and returns one array per output.
Register it without importing it (so the NPU SDK loads only when used):

    from emberflow.runtime import register_backend
    register_backend("mynpu", "my_package.npu:MyNpuBackend", formats=("bmodel",))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...]  # None marks a dynamic axis
    dtype: np.dtype
    quant: dict | None = field(default=None, compare=False)  # {"scale": [...], "zero_point": [...]}

    def describe(self) -> str:
        dims = "x".join("?" if d is None else str(d) for d in self.shape) or "scalar"
        return f"{self.name}: {self.dtype.name}[{dims}]"


class Backend(ABC):
    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @abstractmethod
    def __init__(self, model: bytes, device: str | None = None, **options) -> None: ...

    @abstractmethod
    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]: ...
