"""`sys.*` actions (StackFlow §5). Each handler is `async (router, conn, req) -> None`.

Deliberately not implemented, with a clear error: `bashexec` (a remote root shell on an open
port), `rmmode` (uninstalling packages remotely), `update`/`upgrade` (installing code remotely),
and `push`/`pull` outside the sandbox directory (arbitrary file write/read).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emberflow import STACKFLOW_VERSION, __version__
from emberflow.protocol.envelope import Request, decode_base64, notice, reply
from emberflow.protocol.errors import Code, StackFlowError

if TYPE_CHECKING:
    from emberflow.gateways.base import ClientConnection as Connection
    from emberflow.sys.router import Router

PULL_CHUNK = 1024  # characters of base64 per pull stream chunk, as StackFlow
ACTIONS: dict[str, Any] = {}


def action(name: str):
    def register(fn):
        ACTIONS[name] = fn
        return fn
    return register


def ok(conn: Connection, req: Request, data: Any = "None", object: str = "None", message: str = "") -> None:
    conn.send(reply(req.request_id, "sys", data=data, object=object, message=message))


@action("ping")
async def ping(router: Router, conn: Connection, req: Request) -> None:
    ok(conn, req)


@action("auth")
async def auth(router: Router, conn: Connection, req: Request) -> None:
    if router.cfg.auth_required:
        principal = router.cfg.principal_for(req.data) if isinstance(req.data, str) else None
        if principal is None:
            raise StackFlowError(Code.UNAUTHORIZED, "Unauthorized: wrong token.")
        conn.principal = principal  # its tasks are its own (see emberflow.sys.tasks)
    conn.authed = True
    ok(conn, req)


@action("version")
async def version(router: Router, conn: Connection, req: Request) -> None:
    ok(conn, req, STACKFLOW_VERSION, "sys.utf-8")


@action("version2")
async def version2(router: Router, conn: Connection, req: Request) -> None:
    names = [f"llm_sys-{__version__}"] + [f"llm_{k}-{__version__}" for k in sorted(router.units)]
    ok(conn, req, names, "sys.utf-8.stream")  # array data => ".stream" object, a StackFlow quirk


@action("lsmode")
async def lsmode(router: Router, conn: Connection, req: Request) -> None:
    from emberflow.models.catalogue import Catalogue

    ok(conn, req, Catalogue().lsmode(), "sys.lsmode")


@action("hwinfo")
async def hwinfo(router: Router, conn: Connection, req: Request) -> None:
    from emberflow.sys.hwinfo import hwinfo as read

    ok(conn, req, read(), "sys.hwinfo")


@action("cmminfo")
async def cmminfo(router: Router, conn: Connection, req: Request) -> None:
    from emberflow.sys.hwinfo import cmminfo as read

    ok(conn, req, read(), "sys.cmminfo")


@action("lstask")
async def lstask(router: Router, conn: Connection, req: Request) -> None:
    """StackFlow left this a stub (-10); we list live tasks and unit processes."""
    tasks = [{"work_id": t.work_id, "unit": t.kind, "model": t.model, "owner": t.owner, "waiting": len(t.waiting),
              "host": t.host, "data_addr": t.data_addr, **({"remote_addr": t.remote_addr} if t.remote_addr else {})}
             for t in router.tasks]
    ok(conn, req, {"tasks": tasks, "units": router.supervisor.status()}, "sys.lstask")


@action("reset")
async def reset(router: Router, conn: Connection, req: Request) -> None:
    ok(conn, req, message="llm server restarting ...")
    await router.reset()
    # StackFlow sends this on UART only, after its services restart; our TCP clients stay
    # connected, so they get it too (clients wait for request_id "0").
    for c in list(router.conns.values()):
        c.send(notice(0, "reset over"))


@action("reboot")
async def reboot(router: Router, conn: Connection, req: Request) -> None:
    """Restarts the emberflow service (not the OS): the daemon re-executes itself."""
    ok(conn, req, message="rebooting ...")
    router.reboot_requested = True
    asyncio.get_running_loop().call_later(0.1, router.stop_event.set)


@action("uartsetup")
async def uartsetup(router: Router, conn: Connection, req: Request) -> None:
    data = req.data if isinstance(req.data, dict) else {}
    try:
        baud = int(data.get("baud", router.cfg.baud))
        data_bits = int(data.get("data_bits", 8))
        stop_bits = int(data.get("stop_bits", 1))
        parity = data.get("parity", 110)
        parity = chr(parity) if isinstance(parity, int) else str(parity)[:1]
    except (TypeError, ValueError):
        raise StackFlowError(Code.PARAMETER) from None
    if baud <= 0 or data_bits not in (5, 6, 7, 8) or stop_bits not in (1, 2) or parity.lower() not in "neoms":
        raise StackFlowError(Code.PARAMETER, detail="baud > 0, data_bits 5-8, stop_bits 1|2, parity n/e/o")
    ok(conn, req)
    uart = getattr(router, "uart", None)
    if uart is not None:  # reopened ~100 ms after the reply, as StackFlow does
        asyncio.get_running_loop().call_later(0.1, uart.reconfigure, baud, data_bits, stop_bits, parity.upper())


@action("unit_call")
async def unit_call(router: Router, conn: Connection, req: Request) -> None:
    """StackFlow's internal unit RPCs, reachable from clients. Only `audio.audio_status` is one a
    client can use meaningfully; it is answered from the audio task's real state."""
    kind, _, rpc = req.object.partition(".")
    if kind == "audio" and rpc == "audio_status":
        state = {"cap": "None", "play": "None"}
        if "audio" in router.tasks:
            info = (await router.internal.request("audio", "taskinfo"))["data"].get("unit", {})
            state = {"cap": "Running", "play": "Running" if info.get("playing") else "None"}
        which = req.data if req.data in ("cap", "play") else None
        ok(conn, req, state[which] if which else state, req.object)
        return
    if router.supervisor.running(kind) is None:
        raise StackFlowError(Code.UNIT_CALL, detail=f"unit {kind!r} is not running")
    raise StackFlowError(Code.NO_UNIT_ACTION, detail=f"unit {kind!r} has no RPC {rpc!r} for clients")


def _refuse(name: str, why: str):
    async def refused(router: Router, conn: Connection, req: Request) -> None:
        raise StackFlowError(Code.ACTION_MATCH, f"action match false: sys.{name} is disabled in emberflow ({why})")
    ACTIONS[name] = refused


_refuse("bashexec", "no remote shell: it would give root to anyone who can reach the port")
_refuse("rmmode", "models are PyPI packages: use `emberflow models` on the device")
_refuse("update", "software is updated with pip on the device, not over the protocol")
_refuse("upgrade", "software is updated with pip on the device, not over the protocol")


def _sandboxed(router: Router, obj: str, marker: str) -> Path:
    """The path named in `object` after `marker`, which must stay inside the sandbox."""
    raw = obj.split(marker, 1)[1] if marker in obj else ""
    root = router.cfg.resolved_sandbox()
    if not raw:
        raise StackFlowError(Code.FILE, detail=f"object must be like sys{marker}<path>")
    path = (root / raw.lstrip("/")).resolve() if not raw.startswith(str(root)) else Path(raw).resolve()
    if root not in path.parents and path != root:
        raise StackFlowError(Code.FILE, detail=f"only files under {root} can be pushed or pulled")
    return path


@action("push")
async def push(router: Router, conn: Connection, req: Request) -> None:
    """Upload a file into the sandbox: `sys.file.<p>`, `sys.base64.file.<p>`, stream variants."""
    path = _sandboxed(router, req.object, ".file.")
    chunked = ".stream." in req.object
    data = req.data
    if chunked:
        if not isinstance(data, dict):
            raise StackFlowError(Code.JSON_FORMAT)
        state = conn.uploads.setdefault(str(path), [])
        if data.get("index") != len(state):
            conn.uploads.pop(str(path), None)
            raise StackFlowError(Code.STREAM_INDEX)
        state.append(data.get("delta", ""))
        if not data.get("finish"):
            ok(conn, req)
            return
        data = "".join(conn.uploads.pop(str(path)))
    content = req.payload if req.payload is not None else data
    if isinstance(content, str):
        if ".base64." in req.object:
            content = decode_base64(content)
        else:
            content = content.encode()
    if not isinstance(content, bytes):
        raise StackFlowError(Code.JSON_FORMAT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    ok(conn, req, message=f"sha256:{hashlib.sha256(content).hexdigest()}")


@action("pull")
async def pull(router: Router, conn: Connection, req: Request) -> None:
    path = _sandboxed(router, req.object, ".file.")
    if not path.is_file():
        raise StackFlowError(Code.FILE, "file does not exist.")
    b64 = base64.b64encode(path.read_bytes()).decode()
    if ".stream." not in req.object:
        ok(conn, req, b64, "sys.base64.stream")
        return
    chunks = [b64[i:i + PULL_CHUNK] for i in range(0, len(b64), PULL_CHUNK)]
    for i, chunk in enumerate(chunks):
        ok(conn, req, {"delta": chunk, "index": i, "finish": False}, "sys.base64.stream")
    ok(conn, req, {"delta": "", "index": len(chunks), "finish": True}, "sys.base64.stream")


def restart_command() -> list[str]:
    """How `sys.reboot` re-executes the daemon: the same interpreter and arguments."""
    return [sys.executable, *sys.argv] if sys.argv and sys.argv[0] else [sys.executable, "-m", "emberflow", "up"]


def reexec() -> None:
    cmd = restart_command()
    os.execv(cmd[0], cmd)
