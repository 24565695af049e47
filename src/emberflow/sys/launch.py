"""Run `emberflow up` as a child process and find its port: for the demo, scripts and tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

LISTENING = "emberflow: listening on "


class Launched:
    def __init__(self, config: dict[str, Any], *, args: list[str] | None = None, env: dict[str, str] | None = None,
                 workdir: Path | None = None, timeout: float = 60.0, echo: bool = False):
        workdir = workdir or Path(tempfile.mkdtemp(prefix="emberflow-launch-"))
        self.config_path = workdir / "emberflow.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log: list[str] = []
        self.echo = echo
        self.host = "127.0.0.1"
        self.http_port: int | None = None  # from "emberflow: http on H:P" (serving gateway)
        self.grpc_port: int | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emberflow", "up", "--config", str(self.config_path), *(args or [])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            start_new_session=True, text=True)
        threading.Thread(target=self._pump, daemon=True).start()  # never let the pipe fill up
        self.port = self.wait_listening_count(1, timeout)

    def _pump(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("emberflow: http on "):
                self.http_port = int(line.rsplit(":", 1)[1])
            elif line.startswith("emberflow: grpc on "):
                self.grpc_port = int(line.rsplit(":", 1)[1])
            self.log.append(line)
            if self.echo:
                sys.stderr.write(line)

    @property
    def listen_count(self) -> int:
        return sum(1 for line in self.log if line.startswith(LISTENING))

    def wait_listening_count(self, count: int, timeout: float = 60.0) -> int:
        """Port of the count-th start (sys.reboot re-executes the daemon, which prints it again)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [line for line in self.log if line.startswith(LISTENING)]
            if len(lines) >= count:
                self.port = int(lines[-1].rsplit(":", 1)[1])
                return self.port
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("emberflow did not start:\n" + "".join(self.log[-40:]))

    def client(self, **kw: Any):
        from emberflow.client import Client

        return Client(self.host, self.port, **kw)

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
