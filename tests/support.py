"""What tests share beyond fixtures: the server launcher and the StackFlow reference examples.

Lives here, not in conftest.py: tests/<area>/conftest.py files would shadow `from conftest import`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emberflow.sys.launch import Launched

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
EXAMPLES = SHARED / "spec" / "stackflow-examples"
TESTS = Path(__file__).resolve().parent


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
