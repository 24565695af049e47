"""The local backend: a unit host as a child OS process of the sys daemon (`python -m emberflow.unit.host`)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any


class LocalProcess:
    """An asyncio child process, seen as a `UnitHandle`."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def where(self) -> dict[str, Any]:
        return {"backend": "local"}

    def exit_detail(self) -> str | None:
        return None  # the exit code or signal says it

    def connection_lost(self) -> None:
        pass  # wait() sees the exit itself, at once

    async def wait(self) -> int:
        return await self.proc.wait()

    def terminate(self) -> None:
        self.proc.terminate()

    def kill(self) -> None:
        self.proc.kill()


async def start_local(kind: str, path: str, control_addr: str, host_args: list[str]) -> LocalProcess:
    cmd = [
        sys.executable,
        "-m",
        "emberflow.unit.host",
        "--kind",
        kind,
        "--control",
        control_addr,
        "--unit-path",
        path,
        *host_args,
    ]
    return LocalProcess(await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL))
