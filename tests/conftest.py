"""Shared fixtures: real emberflow servers started on loopback as subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
EXAMPLES = SHARED / "spec" / "stackflow-examples"
TESTS = Path(__file__).resolve().parent


class Server:
    """`emberflow up` in its own process group, on a free loopback port."""

    def __init__(self, tmp: Path, *, config: dict | None = None, args: list[str] | None = None):
        cfg = {"rundir": str(tmp / "run"), "sandbox": str(tmp / "files"), "port": 0, "http_port": 0, "grpc_port": 0,
               "units": {"echo": "units_for_tests:EchoUnit", "ticker": "units_for_tests:TickerUnit"}}
        cfg.update(config or {})
        self.config_path = tmp / "emberflow.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
                   EMBERFLOW_LOG="WARNING")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emberflow", "up", "--config", str(self.config_path), *(args or [])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True, text=True)
        self.log: list[str] = []
        self.http_port: int | None = None  # set from "emberflow: http on H:P" (serving gateway)
        self.grpc_port: int | None = None
        self.port = self._wait_listening()
        self.host = "127.0.0.1"

    def _wait_listening(self, timeout: float = 30.0) -> int:
        port: list[int] = []
        ready = threading.Event()

        def pump() -> None:  # keep draining stdout so the server never blocks on a full pipe
            for line in self.proc.stdout:
                self.log.append(line)
                if line.startswith("emberflow: http on "):
                    self.http_port = int(line.rsplit(":", 1)[1])
                elif line.startswith("emberflow: grpc on "):
                    self.grpc_port = int(line.rsplit(":", 1)[1])
                if line.startswith("emberflow: listening on "):
                    port.append(int(line.rsplit(":", 1)[1]))
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout):
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.log))
        return port[-1]

    @property
    def listen_count(self) -> int:
        return sum(1 for line in self.log if line.startswith("emberflow: listening on "))

    def wait_listening_count(self, count: int, timeout: float = 30.0) -> int:
        """After sys.reboot the daemon re-executes itself and prints the line again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [line for line in self.log if line.startswith("emberflow: listening on ")]
            if len(lines) >= count:
                self.port = int(lines[-1].rsplit(":", 1)[1])
                return self.port
            time.sleep(0.05)
        raise TimeoutError("server did not come back:\n" + "".join(self.log[-30:]))

    def client(self, **kw):
        from emberflow.client import Client

        return Client(self.host, self.port, **kw)

    def unit_pid(self, kind: str) -> int:
        import psutil

        for child in psutil.Process(self.proc.pid).children(recursive=True):
            cmd = child.cmdline()
            if "emberflow.unit.host" in cmd and kind in cmd:
                return child.pid
        raise LookupError(kind)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)


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
