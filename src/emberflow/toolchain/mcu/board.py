"""Cores, memory regions and the QEMU boards that emulate them.

A device profile (targets/*.toml) says how much flash and RAM the real chip has and, for
MCUs, where (`origin`). The QEMU boards have their own memory maps; a build for a board
links at the board's addresses but never with more room than the target has, so a model
that would not fit the chip does not link for its emulation either.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from emberflow.targets import MemoryRegion, Target
from emberflow.toolchain.mcu.lower import CompileError


@dataclass(frozen=True)
class Core:
    name: str  # -mcpu
    fpu: str  # -mfpu

    @property
    def cflags(self) -> list[str]:
        return [
            f"-mcpu={self.name}",
            "-mthumb",
            "-mfloat-abi=hard",
            f"-mfpu={self.fpu}",
        ]


CORES = {
    "cortex-m4": Core("cortex-m4", "fpv4-sp-d16"),
    "cortex-m7": Core("cortex-m7", "fpv5-d16"),
    "cortex-m33": Core("cortex-m33", "fpv5-sp-d16"),
}


@dataclass(frozen=True)
class Board:
    """A QEMU machine: its core, memory map, UART and SysTick clock."""

    key: str  # what --on takes: qemu-m4 ...
    machine: str  # qemu -M
    core: Core
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int
    uart: int  # CMSDK APB UART0 base
    systick_hz: int  # the SysTick clock with CLKSOURCE = processor clock


# mps2-an386 (M4) and mps2-an500 (M7) are two FPGA images of the same MPS2 board: one
# memory map, UART and 25 MHz clock; the AN505 (M33) is laid out for TrustZone.
_MPS2_M4 = Board(
    "qemu-m4",
    "mps2-an386",
    CORES["cortex-m4"],
    flash_origin=0x00000000,
    flash_bytes=4 << 20,
    ram_origin=0x20000000,
    ram_bytes=4 << 20,
    uart=0x40004000,
    systick_hz=25_000_000,
)
BOARDS = {
    "qemu-m4": _MPS2_M4,
    "qemu-m7": replace(_MPS2_M4, key="qemu-m7", machine="mps2-an500", core=CORES["cortex-m7"]),
    "qemu-m33": Board(
        "qemu-m33",
        "mps2-an505",
        CORES["cortex-m33"],
        flash_origin=0x10000000,
        flash_bytes=4 << 20,
        ram_origin=0x38000000,
        ram_bytes=2 << 20,
        uart=0x50200000,
        systick_hz=20_000_000,
    ),
}


def board(key: str) -> Board:
    if key not in BOARDS:
        raise CompileError(f"unknown board {key!r}; choose one of {', '.join(BOARDS)}")
    return BOARDS[key]


def target_core(target: Target) -> Core:
    m = re.search(r"cortex-(m\d+)", target.cpu.lower())
    if not m or f"cortex-{m.group(1)}" not in CORES:
        raise CompileError(
            f"target {target.name}: its cpu {target.cpu!r} is not a Cortex-M core emberflow builds for "
            f"({', '.join(CORES)})"
        )
    return CORES[f"cortex-{m.group(1)}"]


def _first(target: Target, holds: str, kinds: tuple[str, ...]) -> MemoryRegion:
    for region in target.memory:
        if holds in region.holds and region.kind in kinds:
            return region
    raise CompileError(f"target {target.name} has no {'/'.join(kinds)} region that holds {holds}")


def flash_region(target: Target) -> MemoryRegion:
    """Weights and code go to the first flash region of the profile (profiles list the fastest first)."""
    return _first(target, "weights", ("flash",))


def ram_region(target: Target) -> MemoryRegion:
    return _first(target, "activations", ("sram",))


def region_origins(target: Target) -> dict[str, int]:
    """`origin` of each memory region, an optional field of the profile."""
    if not target.path:
        return {}
    data = tomllib.loads(Path(target.path).read_text(encoding="utf-8"))
    return {m["name"]: int(m["origin"]) for m in data.get("memory", []) if "origin" in m}
