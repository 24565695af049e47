"""Toolchain wall time on the PP-OCRv5 recognition model (16.5 MB ONNX, 746 nodes).

Each step runs as a real CLI process (`emberflow ...`), so the times include Python start-up
and imports, as a user sees them. Calibration uses 16 random 48x320 inputs (speed only;
bench/toolchain_ocr_quant.py measures accuracy with rendered text).

Run: .venv/bin/python bench/toolchain_speed.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "toolchain"))

from toolchain_models import real_model
from toolchain_table import emit

EMBERFLOW = str(Path(sys.executable).with_name("emberflow"))


def step(label: str, args: list[str], ok_codes=(0,)) -> float:
    t0 = time.perf_counter()
    res = subprocess.run([EMBERFLOW, *args], capture_output=True, text=True)
    took = time.perf_counter() - t0
    if res.returncode not in ok_codes:
        raise SystemExit(f"{label} failed ({res.returncode}): {res.stderr[-800:]}")
    return took


def main() -> None:
    rec = str(real_model("ocr_rec"))
    tmp = Path(tempfile.mkdtemp(prefix="emberflow-speed-"))
    q = str(tmp / "rec_int8.onnx")
    shape = ["--shape", "x=1x3x48x320"]
    times = {
        "emberflow --help": step("help", ["--help"]),
        "analyze": step("analyze", ["analyze", rec, *shape, "--json"]),
        "check --target stm32h747": step("check", ["check", rec, "-t", "stm32h747", *shape, "--json"], ok_codes=(0, 1)),
        "quantize (16 random samples)": step(
            "quantize",
            ["quantize", rec, "-o", q, "--calib", "random:16", *shape, "--op-types", "Conv,MatMul", "--json"],
        ),
        "pack fp32 + int8": step(
            "pack", ["pack", f"rec={rec}", f"rec8={q}", "-o", str(tmp / "rec.ember"), *shape, "--json"]
        ),
        "inspect": step("inspect", ["inspect", str(tmp / "rec.ember"), "--json"]),
    }
    total = sum(v for k, v in times.items() if k != "emberflow --help")
    rows = [[k, round(v, 2)] for k, v in times.items()] + [
        ["**analyze + check + quantize + pack + inspect**", round(total, 2)]
    ]
    emit(["step", "wall time (s)"], rows)


if __name__ == "__main__":
    main()
