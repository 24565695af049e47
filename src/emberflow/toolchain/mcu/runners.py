"""Where a compiled model runs for validation: this machine (ctypes), QEMU, or a board on a serial port.

Each runner takes the inputs of one inference and returns the outputs and every layer's
output; state carries over between calls, so streaming models run step by step.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from emberflow.toolchain.mcu.artifact import Artifact, BuildError
from emberflow.toolchain.mcu.board import BOARDS, flash_region, ram_region
from emberflow.toolchain.mcu.protocol import Link, ProtocolError

PLACES = ("host", *BOARDS, "serial:URL")


class RunResult(NamedTuple):
    """One inference: the outputs, each layer's outputs by (layer, output index), and
    the device's SysTick count (None on the host)."""

    outputs: list[np.ndarray]
    layers: dict[tuple[int, int], bytes]
    ticks: int | None


class Runner:
    def run(self, inputs: list[np.ndarray]) -> RunResult:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _arrays(art: Artifact, raw: list[bytes]) -> list[np.ndarray]:
    return [np.frombuffer(b, dtype=s["dtype"]).reshape(s["shape"]).copy() for b, s in zip(raw, art.manifest["outputs"])]


class HostRunner(Runner):
    def __init__(self, art: Artifact, kernels: str = "portable") -> None:
        from emberflow.toolchain.mcu.host import HostModel

        self.model = HostModel(art, kernels)

    def run(self, inputs: list[np.ndarray]) -> RunResult:
        outs = self.model.run(inputs)
        return RunResult(outs, dict(self.model.captured), None)


class DeviceRunner(Runner):
    """The Validation app over the framed serial protocol (a QEMU UART on TCP, or a real port)."""

    def __init__(
        self,
        art: Artifact,
        link: Link,
        proc: subprocess.Popen[bytes] | None = None,
        tmp: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        self.art, self.link, self.proc, self.tmp = art, link, proc, tmp
        try:
            models = link.hello()
        except ProtocolError:
            self.close()
            raise
        names = [m.name for m in models]
        if art.name not in names:
            self.close()
            raise ProtocolError(f"the device runs {names}, not {art.name}: flash the Validation app built for it")
        self.index = names.index(art.name)

    def run(self, inputs: list[np.ndarray]) -> RunResult:
        raw = [np.ascontiguousarray(x, dtype=s["dtype"]).tobytes() for x, s in zip(inputs, self.art.manifest["inputs"])]
        res = self.link.run(self.index, raw, per_layer=True)
        return RunResult(_arrays(self.art, res.outputs), res.layers, res.ticks)

    def close(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self.link.bye()
                except ProtocolError:
                    pass
        finally:
            self.link.close()
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            if self.tmp is not None:
                self.tmp.cleanup()


def validation_elf(art: Artifact, board_key: str, out: Path) -> Path:
    """The Validation app with this model for a QEMU board, in the target's memory limits."""
    from emberflow.toolchain.mcu.cross import board_memory, build_app

    board = BOARDS[board_key]
    target = art.target()
    memory = board_memory(board, flash_region(target).bytes, ram_region(target).bytes)
    build = build_app(
        [art],
        board.core,
        memory,
        "validation",
        out,
        kernels=art.manifest["kernels"],
        defines=[f"EF_UART_BASE={board.uart:#x}u"],
    )
    return build.elf


def open_runner(art: Artifact, on: str, host_kernels: str = "portable") -> Runner:
    """`host_kernels` picks the host build's code path: portable C, or "dsp" with the intrinsics emulated."""
    if on == "host":
        return HostRunner(art, host_kernels)
    if on.startswith("serial:"):
        url = on[len("serial:") :]
        return DeviceRunner(art, Link(url))
    if on in BOARDS:
        from emberflow.toolchain.mcu.qemu import start_serial

        tmp = tempfile.TemporaryDirectory(prefix="emberflow-qemu-")
        elf = validation_elf(art, on, Path(tmp.name))
        proc, url = start_serial(BOARDS[on], elf)
        link = None
        for _ in range(100):  # QEMU opens its server socket a moment after starting
            try:
                link = Link(url)
                break
            except ProtocolError:
                if proc.poll() is not None:
                    break
                import time

                time.sleep(0.05)
        if link is None:
            out = proc.communicate()[0].decode(errors="replace") if proc.poll() is not None else ""
            proc.kill()
            tmp.cleanup()
            raise BuildError(f"could not connect to QEMU's UART for {on}: {out.strip()[-300:]}")
        return DeviceRunner(art, link, proc, tmp)
    raise BuildError(f"--on {on!r}: choose one of {', '.join(PLACES)}")
