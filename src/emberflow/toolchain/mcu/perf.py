"""`emberflow profile DIR --on qemu-m4`: the SystemPerformance app under QEMU, plus the cross build's sizes.

Per-layer and total emulated instructions (SysTick with -icount; deterministic), flash and
RAM by section, the kernels' deepest stack frame and the stack the app really used.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from emberflow.toolchain.mcu.artifact import (
    Artifact,
    BuildError,
    BuildRecord,
    SizesRecord,
)
from emberflow.toolchain.mcu.board import board, flash_region, ram_region
from emberflow.toolchain.mcu.buildfiles import memory_block
from emberflow.toolchain.mcu.cross import board_memory, build_app
from emberflow.toolchain.mcu.qemu import run_console, ticks_to_instructions


@dataclass
class LayerPerf:
    index: int
    op: str
    node: str
    macc: int
    instructions: int


@dataclass
class McuProfile:
    model: str
    on: str
    core: str
    kernels: str
    instructions: int
    macc: int
    layers: list[LayerPerf]
    sizes: SizesRecord
    stack_used: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def profile_compiled(compiled: str | Path, on: str = "qemu-m4", kernels: str | None = None) -> McuProfile:
    art = Artifact.open(compiled)
    b = board(on)
    kernels = kernels or art.manifest["kernels"]
    target = art.target()
    memory = board_memory(b, flash_region(target).bytes, ram_region(target).bytes)
    with tempfile.TemporaryDirectory(prefix="emberflow-perf-") as tmp:
        build = build_app([art], b.core, memory, "perf", Path(tmp), kernels=kernels)
        run = run_console(b, build.elf)
    if run.exit_code != 0:
        raise BuildError(
            f"SystemPerformance exited with {run.exit_code} under {b.machine}: {run.console.strip()[-400:]}"
        )
    total = re.search(r"EFPERF total (\d+)", run.console)
    stack = re.search(r"EFPERF stack (\d+)", run.console)
    if total is None:
        raise BuildError(f"SystemPerformance printed no total: {run.console.strip()[-400:]}")
    per_layer = {int(i): int(t) for i, t in re.findall(r"EFPERF layer (\d+) (\d+)", run.console)}
    layers = [
        LayerPerf(
            layer["index"],
            layer["op"],
            layer["node"],
            layer["macc"],
            ticks_to_instructions(per_layer.get(layer["index"], 0), b),
        )
        for layer in art.manifest["layers"]
    ]
    return McuProfile(
        model=art.name,
        on=f"{on} ({b.machine})",
        core=b.core.name,
        kernels=kernels,
        instructions=ticks_to_instructions(int(total.group(1)), b),
        macc=int(art.manifest["macc"]),
        layers=layers,
        sizes=build.sizes.to_record(),
        stack_used=int(stack.group(1)) if stack else 0,
        notes=["emulated instructions (QEMU -icount), not cycles: no pipeline, caches or flash wait states"],
    )


# A map with room for any model: sizes of a model however large, for `check` to compare
# with the target (which a link against the target's own regions cannot report). Flash at
# the STM32 address, as in the targets' own maps (and not at 0, which the map reader skips).
ROOMY_MEMORY = memory_block(0x08000000, 0x18000000, 0x20000000, 0x20000000)


def build_record(art: Artifact, *, roomy: bool = False) -> BuildRecord:
    """Exact flash/RAM of the model on its target's core, from a cross build (the
    SystemPerformance app links it). Linked into the target's regions, so a model over
    them raises DoesNotFit; `roomy` links into ROOMY_MEMORY instead."""
    from emberflow.toolchain.mcu.board import target_core
    from emberflow.toolchain.mcu.buildfiles import target_memory

    target = art.target()
    core = target_core(target)
    memory = ROOMY_MEMORY if roomy else target_memory(target)
    with tempfile.TemporaryDirectory(prefix="emberflow-size-") as tmp:
        build = build_app([art], core, memory, "perf", Path(tmp), kernels=art.manifest["kernels"])
    return BuildRecord(core=core.name, **build.sizes.to_record())
