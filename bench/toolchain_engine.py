"""Engine overhead vs calling the runtime directly, on the same session and the same inputs.

For each model the Engine's call (input checks + backend dispatch) and a direct
`session.run(None, feeds)` on the *same* onnxruntime session (or the same TFLM interpreter)
alternate call by call, so drift and noise hit both alike. Reported: median per call of each,
the median paired difference as the overhead in µs, and that over the direct median in percent
(target <= 2 %).

Run: .venv/bin/python bench/toolchain_engine.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "toolchain"))

from toolchain_models import FIXTURES, MODEL_FEEDS, real_model
from toolchain_table import emit

from emberflow.runtime import Engine


def compare(engine: Engine, feeds: dict, direct, calls: int) -> tuple[float, float, float]:
    """Median Engine time, median direct time and median of the paired differences (s).

    Calls alternate one by one (engine, direct, direct, engine, ...), so a slow moment on this
    shared machine lands on both sides; the median paired difference is the overhead estimate.
    """
    run_engine = lambda: engine(feeds)
    for _ in range(3):
        run_engine()
        direct()
    e_times, d_times = [], []
    clock = time.perf_counter
    for i in range(calls):
        first, second = (run_engine, direct) if i % 2 else (direct, run_engine)
        t0 = clock()
        first()
        t1 = clock()
        second()
        t2 = clock()
        (e_times, d_times)[i % 2 == 0].append(t1 - t0)
        (d_times, e_times)[i % 2 == 0].append(t2 - t1)
    e, d = np.array(e_times), np.array(d_times)
    return float(np.median(e)), float(np.median(d)), float(np.median(e - d))


def main() -> None:
    cases = [
        ("digits CNN fp32 (tiny)", FIXTURES / "digits_cnn.onnx", {"image": np.zeros((1, 1, 8, 8), np.float32)}, 20000),
        ("PP-OCRv5 cls 48x192", real_model("ocr_cls"), MODEL_FEEDS["ocr_cls"], 2000),
        ("all-MiniLM-L6 int8, 4 tokens", real_model("minilm_int8"), MODEL_FEEDS["minilm_int8"], 400),
        ("Silero VAD 512 samples", real_model("silero_vad"), MODEL_FEEDS["silero_vad"], 2000),
        ("PP-OCRv5 rec 48x320", real_model("ocr_rec"), MODEL_FEEDS["ocr_rec"], 150),
        ("microWakeWord alexa (TFLM)", real_model("wake_alexa"), None, 20000),
    ]
    rows = []
    worst = 0.0
    for label, path, feeds, calls in cases:
        engine = Engine(path)
        backend = next(iter(engine.graphs.values())).stages[0].backend
        if feeds is None:  # TFLM: the same interpreter, driven directly
            x = np.zeros(engine.inputs[0].shape, engine.inputs[0].dtype)
            feeds = {engine.inputs[0].name: x}
            it = backend.interpreter

            def direct(it=it, x=x):
                it.set_input(x, 0)
                it.invoke()
                return it.get_output(0)
        else:
            sess = backend.session

            def direct(sess=sess, feeds=feeds):
                return sess.run(None, feeds)

        e, d, diff = compare(engine, feeds, direct, calls)
        unchecked = Engine(path, check_inputs=False)
        unchecked.graphs = engine.graphs  # same backend objects, so the same session/interpreter
        unchecked._only = engine._only
        _, d2, diff2 = compare(unchecked, feeds, direct, calls)
        pct = 100 * diff / d
        if d > 1e-3:  # the % target is about real models (>= 1 ms); the tiny ones show the fixed µs cost
            worst = max(worst, pct)
        rows.append(
            [
                label,
                calls,
                round(d * 1e6, 1),
                round(e * 1e6, 1),
                round(diff * 1e6, 1),
                round(pct, 2),
                round(diff2 * 1e6, 1),
                round(100 * diff2 / d2, 2),
            ]
        )
    emit(
        [
            "model",
            "calls",
            "direct median (µs)",
            "Engine median (µs)",
            "overhead (µs)",
            "overhead (%)",
            "overhead with check_inputs=False (µs)",
            "(%)",
        ],
        rows,
        f"worst overhead on models of >= 1 ms: {worst:.2f} % (target <= 2 %)",
    )


if __name__ == "__main__":
    main()
