"""Shared by the issue-2 benches: start and stop a real `emberflow up`, and summarise samples.

Not a bench itself (run_all.py lists the benches explicitly).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from emberflow.sys.launch import Launched

BENCH_DIR = Path(__file__).resolve().parent


class Daemon:
    """`emberflow up` on a free port with a private rundir, as a context manager: the whole process
    group (sys and its unit processes) is stopped on exit, whatever happened inside. It stays in
    the bench's session, so it competes for the CPU like the in-process baselines do."""

    def __init__(self, config: dict | None = None, args: tuple[str, ...] = (), start_timeout: float = 60.0):
        self.tmp = tempfile.TemporaryDirectory(prefix="emberflow-bench-")
        # The HTTP/gRPC gateways are off unless a bench turns them on (their default fixed ports
        # would also clash with other daemons here).
        self.config = {
            "rundir": f"{self.tmp.name}/run",
            "sandbox": f"{self.tmp.name}/files",  # not the user's own sandbox
            "log_level": "WARNING",
            "http_port": None,
            "grpc_port": None,
            "port": 0,
            **(config or {}),
        }
        self.args = list(args)
        self.start_timeout = start_timeout
        self.server: Launched | None = None

    def __enter__(self) -> Daemon:
        # bench units (bench/bench_units.py) must be importable by the unit processes
        env = {"PYTHONPATH": os.pathsep.join(p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p)}
        try:
            self.server = Launched(
                self.config,
                args=self.args,
                env=env,
                workdir=Path(self.tmp.name),
                timeout=self.start_timeout,
                new_session=False,
            )
        except BaseException:
            self.tmp.cleanup()
            raise
        return self

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def proc(self):
        return self.server.proc

    @property
    def startup_s(self) -> float:
        return self.server.startup_s

    def log(self) -> str:
        return "".join(self.server.log)[-4000:] if self.server else ""

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
            self.tmp.cleanup()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self.server is not None:
            print(f"--- emberflow up log (tail) ---\n{self.log()}", file=sys.stderr)
        self.stop()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): an observed value, never an interpolation."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


def machine() -> dict[str, object]:
    """What the figures were measured on, and how busy it was (call at the start of a bench)."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_1m_start": round(os.getloadavg()[0], 2),
    }


def finish_machine(info: dict[str, object]) -> str:
    """Adds the load at the end; returns the one-line description printed under each title."""
    info["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    return (
        f"{info['date']}, {info['cpus']} CPUs, Python {info['python']}, 1-min load average "
        f"{info['loadavg_1m_start']} at start, {info['loadavg_1m_end']} at end"
    )


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """A Markdown table, so the output pastes into docs/benchmarks.md as is."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
