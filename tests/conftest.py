"""Shared fixtures: real emberflow servers started on loopback as subprocesses."""

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
        cfg = {"rundir": str(tmp / "run"), "sandbox": str(tmp / "files"), "port": 0, "http_port": 0, "grpc_port": 0,
               "units": {"echo": "units_for_tests:EchoUnit", "ticker": "units_for_tests:TickerUnit"}}
        cfg.update(config or {})
        env = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
               "EMBERFLOW_LOG": "WARNING"}
        super().__init__(cfg, args=args, env=env, workdir=tmp)

    def unit_pid(self, kind: str) -> int:
        import psutil

        for child in psutil.Process(self.proc.pid).children(recursive=True):
            cmd = child.cmdline()
            if "emberflow.unit.host" in cmd and kind in cmd:
                return child.pid
        raise LookupError(kind)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One server shared by tests that don't care about work-id numbering."""
    s = Server(tmp_path_factory.mktemp("server"))
    yield s
    s.stop()


@pytest.fixture
def fresh_server(tmp_path):
    """A server of its own: the work-id counter starts at 1000, nothing else is running."""
    s = Server(tmp_path)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def llm_params():
    return {"model": "qwen2.5-0.5B-prefill-20e", "response_format": "llm.utf-8.stream", "input": "llm.utf-8.stream",
            "enoutput": True, "max_token_len": 48, "temperature": 0.0, "seed": 7}


def examples(name: str) -> list[dict]:
    import json

    path = EXAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} not found: the shared/ reference folder must sit beside the repo")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
