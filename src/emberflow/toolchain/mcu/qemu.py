"""Run the cross-built apps under QEMU's mps2 boards, with deterministic instruction counting.

`-icount shift=N` makes every instruction take exactly 2^N ns of virtual time, and SysTick
runs from that virtual clock, so ticks convert to emulated instructions exactly (and equal
run to run). They are instructions, not cycles: QEMU models no pipeline or flash wait states.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from emberflow.toolchain.mcu.artifact import BuildError
from emberflow.toolchain.mcu.board import Board

ICOUNT_SHIFT = 7  # 128 ns per instruction: 3.2 SysTick ticks at 25 MHz, 2.56 at 20 MHz
QEMU_HINT = "qemu-system-arm is missing: `make mcu-tools` installs it (Debian package qemu-system-arm)"


def qemu_binary() -> str:
    q = shutil.which("qemu-system-arm")
    if q is None:
        raise BuildError(QEMU_HINT)
    return q


def ticks_to_instructions(ticks: int, board: Board) -> int:
    return round(ticks * 1_000_000_000 / ((1 << ICOUNT_SHIFT) * board.systick_hz))


def qemu_command(board: Board, elf: Path, serial: str = "null") -> list[str]:
    return [
        qemu_binary(),
        "-M",
        board.machine,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        serial,
        "-semihosting-config",
        "enable=on,target=native",
        "-icount",
        f"shift={ICOUNT_SHIFT}",
        "-kernel",
        str(elf),
    ]


@dataclass
class QemuRun:
    exit_code: int
    console: str


def run_console(board: Board, elf: Path, timeout: float = 600) -> QemuRun:
    """Run to the program's semihosting exit; its console text is what it printed."""
    try:
        res = subprocess.run(
            qemu_command(board, elf),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{elf.name} did not finish under {board.machine} within {timeout:.0f} s") from exc
    return QemuRun(res.returncode, res.stdout + res.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serial(board: Board, elf: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start the Validation app with its UART on a TCP socket; returns the process and a pyserial URL."""
    port = free_port()
    proc = subprocess.Popen(
        qemu_command(board, elf, f"tcp:127.0.0.1:{port},server=on,wait=on"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    return proc, f"socket://127.0.0.1:{port}"
