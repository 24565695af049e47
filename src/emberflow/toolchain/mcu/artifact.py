"""A compiled model folder: the generated C, the runtime copy, and manifest.json describing it.

Everything after `emberflow compile` (host runs, cross builds, QEMU, validate, profile) reads
the folder through this class, so the layout is defined in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, NotRequired, TypedDict

from emberflow.errors import EmberflowError

if TYPE_CHECKING:
    from emberflow.targets import Target

RUNTIME_FILES = ("ef_runtime.h", "ef_fixedpoint.h", "ef_kernels.c")
RUNTIME_SUBDIR = "ef_runtime"
MANIFEST = "manifest.json"


class TensorEntry(TypedDict):
    """A tensor the API exposes or a layer writes: where it lives in the arena and its
    quantization (first scale / zero point)."""

    tensor: int  # index in the main subgraph of the .tflite
    name: str
    shape: list[int]
    dtype: str
    bytes: int
    scale: float
    zero_point: int
    offset: int
    # a float graph input: the values its QUANTIZE maps onto the integer range [lo, hi]
    float_range: NotRequired[list[float]]


class LayerEntry(TypedDict):
    index: int
    op: str
    node: str
    macc: int
    scratch: int
    outputs: list[TensorEntry]


class VariableEntry(TypedDict):
    name: str
    offset: int  # in the state buffer
    bytes: int


class SizesRecord(TypedDict):
    """Bytes of a cross build by what they hold (see cross.Sizes)."""

    weights: int
    model_code: int
    runtime_code: int
    libc_code: int
    app_code: int
    arena: int
    state: int
    model_data_bss: int
    data_bss: int
    stack_reserved: int
    kernel_stack: int
    kernel_stack_function: str
    by_object: dict[str, int]
    model_flash: int
    runtime_and_kernels: int
    model_ram: int
    ram: int


class BuildRecord(SizesRecord):
    """The `build` entry of manifest.json: the sizes of a cross build for the target."""

    core: str  # -mcpu of the build


class Manifest(TypedDict):
    """manifest.json of a compiled folder."""

    name: str
    model: str
    model_sha256: str
    compiled_from: str
    target: str
    target_path: str
    kernels: str
    shared_arena: bool
    tool: str
    macc: int
    arena_bytes: int
    arena_lower_bound: int
    state_bytes: int
    weights_bytes: int
    inputs: list[TensorEntry]
    outputs: list[TensorEntry]
    layers: list[LayerEntry]
    variables: list[VariableEntry]
    # exact sizes from a cross build; None when compiled without the toolchain
    build: NotRequired[BuildRecord | None]


class BuildError(EmberflowError, RuntimeError):
    """A compiler, linker or emulator step failed; the message says which and why."""


def package_runtime_dir() -> Path:
    return Path(__file__).parent / "runtime"


def apps_dir() -> Path:
    return Path(__file__).parent / "apps"


def runtime_dir() -> Path:
    """The runtime sources shipped with emberflow (a compiled folder carries a copy)."""
    return package_runtime_dir()


@dataclass
class Artifact:
    dir: Path

    @classmethod
    def open(cls, path: str | Path) -> Artifact:
        d = Path(path).resolve()
        if not (d / MANIFEST).is_file():
            raise BuildError(f"{d} is not a compiled model folder (no {MANIFEST}); run `emberflow compile` first")
        return cls(d)

    @cached_property
    def manifest(self) -> Manifest:
        manifest: Manifest = json.loads((self.dir / MANIFEST).read_text())
        return manifest

    @property
    def name(self) -> str:
        return self.manifest["name"]

    def target(self) -> Target:
        """The device profile the folder was compiled for (its file, else its name)."""
        from emberflow.targets import load_target

        return load_target(self.manifest["target_path"] or self.manifest["target"])

    def c_sources(self) -> list[Path]:
        return [self.dir / f"{self.name}.c", self.dir / f"{self.name}_data.c"]

    @property
    def runtime(self) -> Path:
        return self.dir / RUNTIME_SUBDIR

    def layer_outputs(self) -> list[tuple[int, int, int]]:
        """(layer, output index, tensor index) of every tensor a layer writes."""
        return [
            (layer["index"], k, out["tensor"])
            for layer in self.manifest["layers"]
            for k, out in enumerate(layer["outputs"])
        ]
