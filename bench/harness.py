"""Shared by the issue-2 benches: start and stop a real `emberflow up`, and summarise samples.

Not a bench itself (run_all.py lists the benches explicitly).
"""

from __future__ import annotations

import math
import os
import platform
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BENCH_DIR = Path(__file__).resolve().parent
READY_PREFIX = "emberflow: listening on "


def emberflow_command() -> list[str]:
    """The `emberflow` console script of this interpreter's venv (what `make run` starts)."""
    script = Path(sys.executable).parent / "emberflow"
    return [str(script)] if script.exists() else [sys.executable, "-m", "emberflow"]


class Daemon:
    """`emberflow up --port 0` in its own process group, with a private rundir.

    Use as a context manager: the whole group (sys and its unit processes) is terminated on exit,
    whatever happened inside.
    """

    def __init__(self, config: dict | None = None, args: tuple[str, ...] = (), start_timeout: float = 60.0):
        self.tmp = tempfile.TemporaryDirectory(prefix="emberflow-issue2-bench-")
        # Issue 2 measures the StackFlow TCP control plane: the HTTP/gRPC gateways are off unless a
        # bench turns them on (their default fixed ports would also clash with other daemons here).
        cfg = {"rundir": f"{self.tmp.name}/run", "log_level": "WARNING", "http_port": None, "grpc_port": None,
               **(config or {})}
        self.config_path = Path(self.tmp.name) / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg))
        self.cmd = [*emberflow_command(), "up", "--port", "0", "--config", str(self.config_path), *args]
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.startup_s = 0.0  # launch -> the "listening" line (the server accepts from then on)

    def __enter__(self) -> "Daemon":
        env = dict(os.environ)
        # bench units (bench/bench_units.py) must be importable by the unit processes
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH_DIR), env.get("PYTHONPATH", "")) if p)
        self.stderr = open(Path(self.tmp.name) / "stderr.log", "w+b")
        launched = time.monotonic()
        # Own process group (so stop() reaches the unit processes too) but the bench's session: with
        # sched_autogroup a new session would get its own CPU share and beat in-process baselines.
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL, env=env, process_group=0,
                                     bufsize=0)  # unbuffered: select() then sees every line
        try:
            line = self._wait_listening(launched + self.start_timeout)
            self.startup_s = time.monotonic() - launched
            self.port = int(line.rsplit(":", 1)[1])
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self, deadline: float) -> str:
        """The 'listening on' line; other gateways print their own lines first."""
        assert self.proc is not None and self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        while sel.select(max(0.0, deadline - time.monotonic())):
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"emberflow up exited before listening\n{self.log()}")
            if line.startswith(READY_PREFIX):
                return line.strip()
        raise TimeoutError(f"emberflow up was not listening within {self.start_timeout} s\n{self.log()}")

    def log(self) -> str:
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # process_group=0: the daemon leads its own group
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(pgid, signal.SIGKILL)  # unit processes left behind by an unclean exit
        except ProcessLookupError:
            pass
        if self.proc.stdout:
            self.proc.stdout.close()
        self.stderr.close()
        self.tmp.cleanup()
        self.proc = None

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self.proc is not None:
            print(f"--- emberflow up stderr (tail) ---\n{self.log()}", file=sys.stderr)
        self.stop()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): an observed value, never an interpolation."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": statistics.median(values), "p99": percentile(values, 99),
            "mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def machine() -> dict[str, object]:
    """What the figures were measured on, and how busy it was (call at the start of a bench)."""
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "python": platform.python_version(),
            "loadavg_1m_start": round(os.getloadavg()[0], 2)}


def finish_machine(info: dict[str, object]) -> str:
    """Adds the load at the end; returns the one-line description printed under each title."""
    info["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    return (f"{info['date']}, {info['cpus']} CPUs, Python {info['python']}, 1-min load average "
            f"{info['loadavg_1m_start']} at start, {info['loadavg_1m_end']} at end")


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """A Markdown table, so the output pastes into docs/benchmarks.md as is."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
