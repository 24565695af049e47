"""Memory planner vs TensorFlow Lite Micro on int8 .tflite models.

For each model:
  ours        emberflow's activation arena (planner `best`, reshape aliased, 16-byte alignment)
  lower bnd   max bytes alive at one step: no planner can go below it
  TFLM head   non-persistent arena TFLM's recording allocator reports (activations + scratch)
  TFLM tail   persistent arena (node structs, tensor metadata, resource variables)
  TFLM min    smallest arena_size TFLM accepts (allocate + invoke), by bisection
  TFLM act    TFLM min - tail: what TFLM's planner really needs for activations and scratch
  ratio       ours / TFLM act (target <= 1.0); also ours / TFLM head

The recording alone is not trusted: temporary allocations during preparation are not in it,
so the minimum is searched by bisection on a fresh interpreter (in a fresh process) each time.

Run: .venv/bin/python bench/toolchain_memplan.py
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "toolchain"))

from toolchain_models import real_model
from toolchain_table import emit
from toolchain_tflite_models import plain_cnn_int8, resnet_int8

from emberflow.runtime.backends.tflm import capture_native_output, make_interpreter, tflm_io_specs
from emberflow.toolchain.graph import device_dtypes, load_graph
from emberflow.toolchain.memplan import plan_memory

PROBE = """
import sys, numpy as np
from emberflow.runtime.backends.tflm import capture_native_output, make_interpreter, tflm_io_specs
data = open(sys.argv[1], "rb").read()
inputs, _ = tflm_io_specs(data)
try:
    it = make_interpreter(data, int(sys.argv[2]))
    with capture_native_output():
        for i, s in enumerate(inputs):
            it.set_input(np.zeros(s.shape, s.dtype), i)
        it.invoke()
except RuntimeError:
    sys.exit(1)
"""


def tflm_works(path: Path, arena: int) -> bool:
    """One probe per process: TFLM's Python binding can crash (SIGSEGV) on some too-small arenas."""
    res = subprocess.run([sys.executable, "-c", PROBE, str(path), str(arena)], capture_output=True)
    return res.returncode == 0


def tflm_min_arena(path: Path) -> int:
    hi = 1 << 16
    while not tflm_works(path, hi):
        hi *= 2
    lo = 0
    while hi - lo > 16:  # TFLM aligns to 16 bytes; finer steps change nothing
        mid = (lo + hi) // 2
        if tflm_works(path, mid):
            hi = mid
        else:
            lo = mid
    return hi


def tflm_recording(model: bytes, feeds: list[np.ndarray]) -> tuple[int, int]:
    it = make_interpreter(model, 4 << 20)
    with capture_native_output() as out:
        for i, x in enumerate(feeds):
            it.set_input(x, i)
        it.invoke()
        it.print_allocations()
    text = out[0]
    head = int(re.search(r"allocation head (\d+)", text).group(1))
    tail = int(re.search(r"allocation tail (\d+)", text).group(1))
    return head, tail


def digits_tflite(tmp: Path) -> bytes:
    """The trained digits CNN fixture, quantized and exported the way a user would."""
    from toolchain_models import FIXTURES

    from emberflow.toolchain.quantize import quantize_model
    from emberflow.toolchain.tflite_export import export_tflite

    data = np.load(FIXTURES / "digits_data.npz")
    samples = [{"image": data["calib_x"][i : i + 1]} for i in range(len(data["calib_x"]))]
    quantize_model(FIXTURES / "digits_cnn.onnx", tmp / "digits_int8.onnx", samples)
    export_tflite(tmp / "digits_int8.onnx", tmp / "digits_int8.tflite")
    return (tmp / "digits_int8.tflite").read_bytes()


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="emberflow-bench-"))
    models = {name: real_model(f"wake_{name}").read_bytes() for name in ("okay_nabu", "alexa")}
    models["hey_jarvis"] = real_model("wake_alexa").with_name("hey_jarvis.tflite").read_bytes()
    models["hey_mycroft"] = real_model("wake_alexa").with_name("hey_mycroft.tflite").read_bytes()
    models["resnet_int8 (skips)"] = resnet_int8()
    models["plain_cnn_int8"] = plain_cnn_int8()
    models["digits CNN (quantize + export-tflite)"] = digits_tflite(tmp)
    rows = []
    for name, data in models.items():
        path = tmp / (re.sub(r"\W+", "_", name) + ".tflite")
        path.write_bytes(data)
        inputs, _ = tflm_io_specs(data)
        feeds = [np.zeros(s.shape, s.dtype) for s in inputs]
        t0 = time.perf_counter()
        g = load_graph(path)
        plan = plan_memory(g, "best", dtypes=device_dtypes(g))
        plan_ms = (time.perf_counter() - t0) * 1e3
        head, tail = tflm_recording(data, feeds)
        minimum = tflm_min_arena(path)
        act = minimum - tail
        rows.append(
            (
                name,
                plan.arena_bytes,
                plan.lower_bound_bytes,
                plan.strategy,
                head,
                tail,
                minimum,
                act,
                plan.arena_bytes / act,
                plan.arena_bytes / head,
                plan_ms,
            )
        )
    worst = max(max(r[8], r[9]) for r in rows)
    emit(
        [
            "model",
            "ours (B)",
            "lower bound (B)",
            "our strategy",
            "TFLM head (B)",
            "TFLM tail (B)",
            "TFLM min arena (B)",
            "TFLM act = min - tail (B)",
            "ours / TFLM act",
            "ours / TFLM head",
            "plan time (ms)",
        ],
        [[*r[:8], round(r[8], 3), round(r[9], 3), round(r[10], 1)] for r in rows],
        f"worst ratio {worst:.3f} (target <= 1.0): {'met' if worst <= 1.0 else 'NOT met'}",
    )


if __name__ == "__main__":
    main()
