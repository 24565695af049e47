"""Run `emberflow up` as a child process and find its port: for the demo, scripts, tests and benches."""

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
    """The daemon leads its own process group, so `stop()` reaches its unit processes too.

    `new_session=False` keeps it in the caller's session: benchmarks want that, because with
    sched_autogroup a new session gets a CPU share of its own and would beat in-process baselines.
    """

    def __init__(
        self,
        config: dict[str, Any],
        *,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        workdir: Path | None = None,
        timeout: float = 60.0,
        echo: bool = False,
        new_session: bool = True,
    ):
        workdir = workdir or Path(tempfile.mkdtemp(prefix="emberflow-launch-"))
        self.config_path = workdir / "emberflow.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log: list[str] = []
        self.echo = echo
        self.host = "127.0.0.1"
        self.http_port: int | None = None  # from "emberflow: http on H:P" (serving gateway)
        self.grpc_port: int | None = None
        self.listened_at: list[float] = []  # monotonic time of each "listening" line (one per start)
        self._changed = threading.Condition()
        launched = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emberflow", "up", "--config", str(self.config_path), *(args or [])],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=new_session,
            process_group=None if new_session else 0,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()  # never let the pipe fill up
        self.port = self.wait_listening_count(1, timeout)
        self.startup_s = self.listened_at[0] - launched  # launch -> accepting connections

    def _pump(self) -> None:
        assert self.proc.stdout is not None  # started with stdout=PIPE
        for line in self.proc.stdout:
            if line.startswith("emberflow: http on "):
                self.http_port = int(line.rsplit(":", 1)[1])
            elif line.startswith("emberflow: grpc on "):
                self.grpc_port = int(line.rsplit(":", 1)[1])
            with self._changed:
                if line.startswith(LISTENING):
                    self.listened_at.append(time.monotonic())
                self.log.append(line)
                self._changed.notify_all()
            if self.echo:
                sys.stderr.write(line)
        with self._changed:
            self._changed.notify_all()  # the daemon exited

    @property
    def listen_count(self) -> int:
        return len(self.listened_at)

    def wait_listening_count(self, count: int, timeout: float = 60.0) -> int:
        """Port of the count-th start (sys.reboot re-executes the daemon, which prints it again)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.listened_at) < count and self.proc.poll() is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(min(left, 0.5))
            lines = [line for line in self.log if line.startswith(LISTENING)]
        if len(lines) >= count:
            self.port = int(lines[-1].rsplit(":", 1)[1])
            return self.port
        self.stop()
        raise RuntimeError("emberflow did not start:\n" + "".join(self.log[-40:]))

    def client(self, **kw: Any):
        from emberflow.client import Client

        return Client(self.host, self.port, **kw)

    def stop(self) -> None:
        group = self.proc.pid  # the daemon leads its process group
        if self.proc.poll() is None:
            try:
                os.killpg(group, signal.SIGTERM)
                self.proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(group, signal.SIGKILL)  # unit processes an unclean exit may have left behind
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
