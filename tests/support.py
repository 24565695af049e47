"""What tests share beyond fixtures: the server launcher and the StackFlow reference examples.

Lives here, not in conftest.py: tests/<area>/conftest.py files would shadow `from conftest import`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from emberflow.sys.launch import Launched

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
EXAMPLES = SHARED / "spec" / "stackflow-examples"
TESTS = Path(__file__).resolve().parent


T = TypeVar("T")

# How long a test waits for something to happen before it calls it a hang: far above any wait on
# a loaded CI machine, below pytest-timeout's 300 s. A bound that ends a stuck test, never a
# claim about speed: what tests assert is what happened.
HANG_GUARD = 240.0


def eventually(
    condition: Callable[[], T], explain: Callable[[], Any] = lambda: "", timeout: float = HANG_GUARD, step: float = 0.05
) -> T:
    """Poll `condition` until it gives something true, and return that; `explain()` says what was
    seen if it never comes (a hang)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {explain()}")
        time.sleep(step)
    return value


class Server(Launched):
    """`emberflow up` in its own process group, on a free loopback port, with the test units."""

    def __init__(self, tmp: Path, *, config: dict | None = None, args: list[str] | None = None):
        cfg = {
            "rundir": str(tmp / "run"),
            "sandbox": str(tmp / "files"),
            # the tests' own files (videos, answer recordings) are in this session's temp tree
            "media_dirs": [str(tmp.parent)],
            "port": 0,
            "http_port": 0,
            "grpc_port": 0,
            "units": {
                "echo": "units_for_tests:EchoUnit",
                "ticker": "units_for_tests:TickerUnit",
                "tally": "units_for_tests:TallyUnit",
            },
        }
        cfg.update(config or {})
        env = {
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            "EMBERFLOW_LOG": "WARNING",
        }
        super().__init__(cfg, args=args, env=env, workdir=tmp)

    def unit_pid(self, kind: str) -> int:
        import psutil

        for child in psutil.Process(self.proc.pid).children(recursive=True):
            cmd = child.cmdline()
            if "emberflow.unit.host" in cmd and kind in cmd:
                return child.pid
        raise LookupError(kind)


def examples(name: str) -> list[dict]:
    import json

    path = EXAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} not found: the shared/ reference folder must sit beside the repo")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def levenshtein(a: str, b: str) -> int:
    """Edit distance between two texts (for character error rates)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]
