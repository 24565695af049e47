"""Flash and RAM of a model on an MCU target, for `check` and `analyze`.

Exact when there is a cross build to read: the `build` record of a compiled folder
(`--compiled DIR`), or a compile into a temporary folder when the model is one
`emberflow compile` takes and arm-none-eabi-gcc is installed. Otherwise the graph's
estimate (weights and the planned arena: no code, no stack), with the reason. Either
way the result says which it is.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from emberflow.targets import Target
from emberflow.toolchain.mcu.artifact import Artifact, BuildError, BuildRecord

COMPILABLE = (".tflite", ".onnx")


@dataclass
class Footprint:
    source: Literal["build", "estimate"]
    # where exact figures come from, or why these are estimates
    how: str
    build: BuildRecord | None = None
    compiled: str = ""  # the folder read (empty: a temporary compile, or none)

    @property
    def exact(self) -> bool:
        return self.build is not None

    @property
    def flash_bytes(self) -> int:
        """Weights and parameters, the model's code, the runtime and kernels."""
        return self.build["model_flash"] if self.build else 0

    @property
    def ram_bytes(self) -> int:
        """Arena, streaming state, the model's own data/bss and the deepest kernel frame."""
        return self.build["model_ram"] if self.build else 0

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.update(exact=self.exact, flash_bytes=self.flash_bytes, ram_bytes=self.ram_bytes)
        return d


def _estimate(why: str) -> Footprint:
    return Footprint(
        "estimate",
        "estimate from the graph (weights and the planned arena; no code, no stack): " + why,
    )


def _from_folder(model: Path, target: Target, compiled: Path) -> Footprint:
    from emberflow.toolchain.mcu.cross import have_cross_toolchain
    from emberflow.toolchain.mcu.perf import build_record

    art = Artifact.open(compiled)
    m = art.manifest
    lowered = art.dir / f"{art.name}.tflite"  # what an ONNX model was compiled through
    same = hashlib.sha256(model.read_bytes()).hexdigest() == m["model_sha256"]
    if not same and model.resolve() != lowered:
        raise BuildError(
            f"{art.dir} was compiled from {m['model']}, not from {model}; "
            f"compile {model.name} again or leave out --compiled"
        )
    if m["target"] != target.name:
        raise BuildError(
            f"{art.dir} was compiled for {m['target']}, not {target.name}; "
            f"compile it with --target {target.name} or leave out --compiled"
        )
    record = m.get("build")
    stale = record is not None and not BuildRecord.__required_keys__ <= record.keys()
    if record is not None and not stale:
        return Footprint(
            "build",
            f"exact, from the cross build `emberflow compile` recorded in {art.dir}",
            record,
            str(art.dir),
        )
    why = "recorded by an older emberflow" if stale else "compiled without the toolchain"
    if have_cross_toolchain():
        return Footprint(
            "build",
            f"exact, from a cross build of {art.dir} (its build record: {why})",
            build_record(art, roomy=True),
            str(art.dir),
        )
    return _estimate(
        f"{art.dir} has no usable build record ({why}) and arm-none-eabi-gcc is missing (`make mcu-tools` installs it)"
    )


def model_footprint(
    model: str | Path,
    target: Target,
    *,
    compiled: str | Path | None = None,
    build: bool = True,
) -> Footprint:
    """Exact flash/RAM of `model` on `target` when a cross build can say, else the estimate.

    With `compiled`, that folder's build record (it must come from this model and target);
    otherwise, for an MCU target, an int8 .tflite or emberflow int8 ONNX and the cross
    toolchain installed, a compile into a temporary folder. Errors in `compiled` raise
    BuildError; a model compile refuses (float, unsupported op) gives the estimate and why.
    """
    from emberflow.toolchain.graph import ModelError
    from emberflow.toolchain.mcu.compile import compile_model
    from emberflow.toolchain.mcu.cross import have_cross_toolchain
    from emberflow.toolchain.mcu.lower import CompileError

    model = Path(model)
    if compiled is not None:
        return _from_folder(model, target, Path(compiled))
    if target.kind != "mcu":
        return _estimate(f"{target.name} is not a microcontroller (`emberflow compile` builds for MCU targets)")
    if not build:
        return _estimate("asked for with --no-build")
    if model.suffix.lower() not in COMPILABLE:
        return _estimate(f"`emberflow compile` reads {' or '.join(COMPILABLE)} models")
    if not have_cross_toolchain():
        return _estimate(
            "arm-none-eabi-gcc is not installed (`make mcu-tools` installs it; with it, "
            "this compiles the model and reads the sizes from the linker map)"
        )
    with tempfile.TemporaryDirectory(prefix="emberflow-footprint-") as tmp:
        try:
            art = compile_model(model, target.path or target.name, Path(tmp) / model.stem, fit=False)
        except (CompileError, ModelError) as exc:
            return _estimate(f"`emberflow compile` does not take this model: {exc}")
        record = art.manifest.get("build")
    if record is None:  # the toolchain went away between the check and the build
        return _estimate("the cross build did not run")
    return Footprint(
        "build",
        "exact, from a cross build of the compiled C (into a temporary folder; "
        "`emberflow compile -o DIR` keeps it, `--compiled DIR` reads it)",
        record,
    )
