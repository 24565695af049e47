"""TensorFlow Lite Micro backend for .tflite: the same C++ kernels an MCU runs, on the host."""

from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np

from emberflow.errors import EmberflowError
from emberflow.runtime.backends.base import Backend, TensorSpec


@contextlib.contextmanager
def capture_native_output():
    """TFLM prints from C++ straight to fds 1/2; collect that text instead of spilling it."""
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            box: list[str] = []
            yield box
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            box.append(sink.read().decode(errors="replace"))


def tflm_io_specs(model: bytes) -> tuple[list[TensorSpec], list[TensorSpec]]:
    from emberflow.runtime.tflite_format import TFL_DTYPES, read_tflite_model

    m = read_tflite_model(model)
    sg = m.subgraphs[0]

    def spec(i: int) -> TensorSpec:
        t = sg.tensors[i]
        name = t.name.decode() if isinstance(t.name, bytes) else t.name
        q = t.quantization
        quant = None
        if q is not None and q.scale is not None and len(q.scale):
            quant = {"scale": [float(s) for s in q.scale], "zero_point": [int(z) for z in q.zeroPoint]}
        return TensorSpec(name, tuple(int(d) for d in t.shape), np.dtype(TFL_DTYPES[t.type]), quant)

    return [spec(i) for i in sg.inputs], [spec(i) for i in sg.outputs]


class TflmLoadError(EmberflowError, RuntimeError):
    def __init__(self, message: str, log: str) -> None:
        super().__init__(message)
        self.log = log.strip()

    @property
    def out_of_memory(self) -> bool:
        return "allocate" in self.log.lower() and ("missing" in self.log.lower() or "arena" in self.log.lower())


def make_interpreter(model: bytes, arena_size: int):
    """A TFLM interpreter; on failure the error carries what TFLM printed (its only diagnostics)."""
    from tflite_micro.python.tflite_micro import runtime

    log: list[str] = []
    try:
        with capture_native_output() as log:
            return runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    except RuntimeError as exc:
        raise TflmLoadError(str(exc), "".join(log)) from exc


class TFLiteMicroBackend(Backend):
    name = "tflm"
    formats = ("tflite",)

    def __init__(self, model: bytes, device: str | None = None, *, arena_size: int | None = None, **options) -> None:
        try:
            import tflite_micro  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(
                "the TFLite-Micro backend needs `pip install tflite-micro` (in emberflow[toolchain])"
            ) from exc
        self.inputs, self.outputs = tflm_io_specs(model)
        size = arena_size or max(64 * 1024, 4 * len(model))
        while True:
            try:
                self.interpreter = make_interpreter(model, size)
                break
            except TflmLoadError as exc:
                if not exc.out_of_memory:  # a kernel rejected the model: more memory will not help
                    raise RuntimeError(
                        f"TFLite-Micro rejected the model: {' | '.join(exc.log.splitlines()[-4:])}"
                    ) from exc
                if arena_size or size >= 512 * 1024 * 1024:
                    raise RuntimeError(
                        f"TFLite-Micro could not allocate the model in a {size}-byte arena "
                        f"({exc.log.splitlines()[-1]}); "
                        "pass a larger arena_size (emberflow analyze shows the activation arena)"
                    ) from exc
                size *= 2
        self.arena_size = size

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        it = self.interpreter
        for i, x in enumerate(feeds):
            it.set_input(x, i)
        it.invoke()
        return [it.get_output(i) for i in range(len(self.outputs))]

    def reset(self) -> None:
        """Clear variable state (streaming models keep state between calls)."""
        self.interpreter.reset()
