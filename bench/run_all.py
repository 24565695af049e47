"""`make bench`: run the benches one after the other, each in its own interpreter.

    python bench/run_all.py [--only NAME ...] [--json]

Add a bench by adding a line to BENCHES. Each script prints its own tables (or JSON with --json)
and measures its own baseline, so they can also be run alone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent

# script -> what it measures (issue 2: control plane and LLM)
BENCHES = {
    "sys_ping.py": "sys ping RTT vs asyncio echo, idle RSS, `emberflow up` start time",
    "bus_hop.py": "one bus hop unit→unit vs raw pyzmq PUB/SUB",
    "llm_tcp_vs_direct.py": "LLM tokens/s and TTFT over TCP vs in-process llama-cpp-python",
    # issue 3: voice
    "voice_latency.py": "voice turn latency breakdown, framework overhead, unit RTF, peak RSS",
    # issue 4: toolchain and Engine
    "toolchain_memplan.py": "memory planner arena vs TFLite-Micro (bisected) vs lower bound",
    "toolchain_engine.py": "Engine overhead vs direct onnxruntime / TFLite-Micro calls",
    "toolchain_ocr_quant.py": "PP-OCRv5 rec int8 vs fp32 character error rate",
    "toolchain_speed.py": "analyze + check + quantize + pack wall time on the OCR rec model",
    "dashboard_first_render.py": "dashboard first render in Chromium (DOMContentLoaded, first live data), page weight",
    # issue 10: vision
    "vision_detect.py": "NanoDet over StackFlow TCP and camera -> yolo vs direct onnxruntime; fps, latency, drops",
    # issue 13: bridges
    "ray_placement.py": "a unit on a Ray node vs a local process: TTFT, tokens/s, overhead, hop, restart, Ray memory",
    "wyoming_latency.py": "Wyoming describe/STT/TTS latencies vs the wyoming package alone and in-process units",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run just these")
    ap.add_argument("--json", action="store_true", help="pass --json to every bench")
    args = ap.parse_args()
    failed = []
    for script in args.only or BENCHES:
        print(f"\n### {script}: {BENCHES[script]}", flush=True)
        started = time.monotonic()
        cmd = [sys.executable, str(BENCH_DIR / script), *(["--json"] if args.json else [])]
        rc = subprocess.call(cmd, timeout=900)
        print(f"({script}: exit {rc}, {time.monotonic() - started:.0f} s)", flush=True)
        if rc != 0:
            failed.append(script)
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
