"""A compiled model folder: the generated C, the runtime copy, and manifest.json describing it.

Everything after `emberflow compile` (host runs, cross builds, QEMU, validate, profile) reads
the folder through this class, so the layout is defined in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

RUNTIME_FILES = ("ef_runtime.h", "ef_fixedpoint.h", "ef_kernels.c")
RUNTIME_SUBDIR = "ef_runtime"
MANIFEST = "manifest.json"


class BuildError(RuntimeError):
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
            raise BuildError(
                f"{d} is not a compiled model folder (no {MANIFEST}); run `emberflow compile` first"
            )
        return cls(d)

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.dir / MANIFEST).read_text())

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

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
