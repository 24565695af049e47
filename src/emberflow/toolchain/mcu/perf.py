"""`emberflow profile DIR --on qemu-m4`: the SystemPerformance app under QEMU, plus the cross build's sizes.

Per-layer and total emulated instructions (SysTick with -icount; deterministic), flash and
RAM by section, the kernels' deepest stack frame and the stack the app really used.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from emberflow.targets import load_target
from emberflow.toolchain.mcu.artifact import Artifact, BuildError
from emberflow.toolchain.mcu.board import board, flash_region, ram_region
from emberflow.toolchain.mcu.cross import Sizes, board_memory, build_app
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
    sizes: dict
    stack_used: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def profile_compiled(
    compiled: str | Path, on: str = "qemu-m4", kernels: str | None = None
) -> McuProfile:
    art = Artifact.open(compiled)
    b = board(on)
    kernels = kernels or art.manifest["kernels"]
    target = load_target(art.manifest.get("target_path") or art.manifest["target"])
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
        raise BuildError(
            f"SystemPerformance printed no total: {run.console.strip()[-400:]}"
        )
    per_layer = {
        int(i): int(t) for i, t in re.findall(r"EFPERF layer (\d+) (\d+)", run.console)
    }
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
        sizes=build.sizes.to_dict(),
        stack_used=int(stack.group(1)) if stack else 0,
        notes=[
            "emulated instructions (QEMU -icount), not cycles: no pipeline, caches or flash wait states"
        ],
    )


def target_sizes(art: Artifact) -> Sizes:
    """Exact flash/RAM of the model on its target's core, from a cross build (the perf app links it)."""
    from emberflow.toolchain.mcu.board import target_core
    from emberflow.toolchain.mcu.buildfiles import target_memory

    target = load_target(art.manifest.get("target_path") or art.manifest["target"])
    with tempfile.TemporaryDirectory(prefix="emberflow-size-") as tmp:
        return build_app(
            [art],
            target_core(target),
            target_memory(target),
            "perf",
            Path(tmp),
            kernels=art.manifest["kernels"],
        ).sizes
