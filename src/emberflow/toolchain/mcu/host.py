"""Build the generated C with the system compiler as a shared library and run it through ctypes.

The same sources the microcontroller gets, compiled for this machine: the quickest way to
check every layer against TFLite-Micro. `kernels="dsp"` compiles the DSP code path with its
intrinsics emulated in C, so that path is checked here too before it runs under QEMU.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from emberflow.toolchain.mcu.artifact import Artifact, BuildError, runtime_dir

OBSERVER = ctypes.CFUNCTYPE(
    None,
    ctypes.c_void_p,
    ctypes.c_uint32,
    ctypes.c_uint32,
    ctypes.c_void_p,
    ctypes.c_uint32,
)


def host_compiler() -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise BuildError("no C compiler on this machine: install gcc (apt-get install gcc)")
    return cc


def build_host_library(art: Artifact, kernels: str = "portable", out_dir: Path | None = None) -> Path:
    """Compile the model and the runtime into `<dir>/host/lib<name>-<kernels>.so` (cached by content)."""
    sources = [*art.c_sources(), runtime_dir() / "ef_kernels.c"]
    flags = [
        "-O2",
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-fPIC",
        "-shared",
        "-fwrapv",
        f"-I{runtime_dir()}",
        f"-I{art.dir}",
    ]
    flags += ["-DEF_EMULATE_DSP"] if kernels == "dsp" else ["-DEF_KERNELS_PORTABLE"]
    digest = hashlib.sha256(json.dumps(flags).encode())
    for src in sources:
        digest.update(src.read_bytes())
    digest.update((runtime_dir() / "ef_fixedpoint.h").read_bytes())
    digest.update((runtime_dir() / "ef_runtime.h").read_bytes())
    out_dir = out_dir or art.dir / "host"
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / f"lib{art.name}-{kernels}-{digest.hexdigest()[:12]}.so"
    if not lib.exists():
        cmd = [host_compiler(), *flags, *map(str, sources), "-o", str(lib)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise BuildError(f"host build of {art.name} failed:\n{res.stderr.strip()[-2000:]}")
    return lib


class HostModel:
    """The compiled model in this process: run(inputs) -> outputs, with every layer's output captured."""

    def __init__(self, art: Artifact, kernels: str = "portable") -> None:
        self.art = art
        self.lib = ctypes.CDLL(str(build_host_library(art, kernels)))
        n = art.name
        self._create = getattr(self.lib, f"ai_{n}_create_and_init")
        self._create.argtypes = [
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self._create.restype = ctypes.c_int64  # ai_error {int32 type, int32 code} returned in one register
        self._run = getattr(self.lib, f"ai_{n}_run")
        self._run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        self._run.restype = ctypes.c_int32
        self._observe = getattr(self.lib, f"ai_{n}_set_observer")
        self._observe.argtypes = [ctypes.c_void_p, OBSERVER, ctypes.c_void_p]
        self._reset = getattr(self.lib, f"ai_{n}_reset")
        self._reset.argtypes = [ctypes.c_void_p]
        self.handle = ctypes.c_void_p()
        err = self._create(ctypes.byref(self.handle), None, None)
        if err & 0xFFFFFFFF:
            raise BuildError(f"ai_{n}_create_and_init failed (error type {err & 0xFFFFFFFF:#x})")
        self.captured: dict[tuple[int, int], bytes] = {}
        # kept alive as long as the library may call it
        self._callback = OBSERVER(self._on_layer)
        self._observe(self.handle, self._callback, None)

    def _on_layer(self, _ctx: int | None, layer: int, output: int, data: int | None, nbytes: int) -> None:
        if data and nbytes:
            self.captured[(layer, output)] = ctypes.string_at(data, nbytes)

    def reset(self) -> None:
        self._reset(self.handle)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        specs_in, specs_out = self.art.manifest["inputs"], self.art.manifest["outputs"]
        bufs_in = [np.ascontiguousarray(x, dtype=s["dtype"]) for x, s in zip(inputs, specs_in)]
        bufs_out = [np.zeros(s["shape"], dtype=s["dtype"]) for s in specs_out]
        arr_in = (ctypes.c_void_p * len(bufs_in))(*[b.ctypes.data for b in bufs_in])
        arr_out = (ctypes.c_void_p * len(bufs_out))(*[b.ctypes.data for b in bufs_out])
        self.captured = {}
        if self._run(self.handle, arr_in, arr_out) != 1:
            raise BuildError(f"ai_{self.art.name}_run failed")
        return bufs_out
