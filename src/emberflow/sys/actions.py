"""`sys.*` actions (StackFlow §5). Each handler is `async (router, conn, req) -> None`.

Deliberately not implemented, with a clear error: `bashexec` (a remote root shell on an open
port), `rmmode` (uninstalling packages remotely), `update`/`upgrade` (installing code remotely),
and `push`/`pull` outside the sandbox directory (arbitrary file write/read).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from emberflow import STACKFLOW_VERSION, __version__
from emberflow.protocol.envelope import Request, decode_base64, error_reply, notice, reply
from emberflow.protocol.errors import Code, StackFlowError

if TYPE_CHECKING:
    from emberflow.gateways.connection import Connection
    from emberflow.sys.config import Config
    from emberflow.sys.router import Router

log = logging.getLogger("emberflow.sys")
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
    """Wrong tokens are throttled: after a few, each answer waits longer (per connection and per
    client address, so reconnecting does not reset it), and the connection is dropped after
    `auth_max_failures`, so a token cannot be guessed at thousands of tries a second."""
    principal = router.cfg.principal_for(req.data) if isinstance(req.data, str) else None
    if not router.cfg.auth_required or principal is not None:
        if principal is not None:
            conn.principal = principal  # its tasks are its own (see emberflow.sys.tasks)
        conn.authed = True
        conn.auth_failures = 0
        _AUTH_FAILURES.pop(conn.peer or "", None)
        ok(conn, req)
        return
    conn.auth_failures += 1
    failures = max(conn.auth_failures, _peer_failed(conn.peer))
    if conn.auth_failures >= router.cfg.auth_max_failures:
        log.warning(
            "connection %s (%s): %d wrong sys.auth tokens: disconnecting", conn.conn_id, conn.peer, conn.auth_failures
        )
        last = StackFlowError(
            Code.UNAUTHORIZED,
            "Unauthorized: wrong token.",
            detail=f"{conn.auth_failures} wrong tokens (auth_max_failures): disconnecting",
        )
        if conn.hang_up(error_reply(req.request_id, req.work_id, last)):
            return
    await asyncio.sleep(_auth_delay(failures))
    raise StackFlowError(Code.UNAUTHORIZED, "Unauthorized: wrong token.")


AUTH_FREE_TRIES = 3  # typos are answered at once
AUTH_FIRST_DELAY, AUTH_MAX_DELAY = 0.05, 2.0  # s before answering each later failure, doubling
AUTH_FORGET_S = 600.0  # a client address's failures are forgotten after this long without one
_AUTH_FAILURES: dict[str, tuple[int, float]] = {}  # client address -> (failures, time of the last)


def _auth_delay(failures: int) -> float:
    if failures <= AUTH_FREE_TRIES:
        return 0.0
    return min(AUTH_MAX_DELAY, AUTH_FIRST_DELAY * 2 ** min(failures - AUTH_FREE_TRIES - 1, 16))


def _peer_failed(peer: str | None) -> int:
    """Count a failure for a client address; returns its failures within AUTH_FORGET_S."""
    if not peer:
        return 0
    now = time.monotonic()
    if len(_AUTH_FAILURES) > 1024:  # bounded: forget the stale ones
        for key, (_, last) in list(_AUTH_FAILURES.items()):
            if now - last > AUTH_FORGET_S:
                del _AUTH_FAILURES[key]
    count, last = _AUTH_FAILURES.get(peer, (0, now))
    count = 1 if now - last > AUTH_FORGET_S else count + 1
    _AUTH_FAILURES[peer] = (count, now)
    return count


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
    tasks = [
        {
            "work_id": t.work_id,
            "unit": t.kind,
            "model": t.model,
            "owner": t.owner,
            "waiting": len(t.waiting),
            "host": t.host,
            "data_addr": t.data_addr,
            **({"remote_addr": t.remote_addr} if t.remote_addr else {}),
        }
        for t in router.tasks
    ]
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


PARTIAL_DIR = ".emberflow-uploads"  # unfinished uploads, in the sandbox so that finishing is an atomic rename
MAX_PATH_BYTES, MAX_NAME_BYTES = 4096, 255  # Linux's PATH_MAX and NAME_MAX
PULL_BLOCK = 64 * (PULL_CHUNK // 4 * 3)  # bytes read per step: 64 whole chunks of 1024 characters
BIG_WRITE = 256 * 1024  # stream chunks larger than this are written from a worker thread


def _sandboxed(router: Router, obj: str, marker: str) -> Path:
    """The path named in `object` after `marker`, which must name a file inside the sandbox."""
    raw = obj.split(marker, 1)[1] if marker in obj else ""
    root = router.cfg.resolved_sandbox()
    if not raw:
        raise StackFlowError(Code.FILE, detail=f"object must be like sys{marker}<path>")
    if "\x00" in raw:
        raise StackFlowError(Code.FILE, detail="the path contains a NUL character")
    if len(raw.encode("utf-8", "replace")) > MAX_PATH_BYTES or any(
        len(part.encode("utf-8", "replace")) > MAX_NAME_BYTES for part in raw.split("/")
    ):
        raise StackFlowError(
            Code.FILE, detail=f"the path is too long (at most {MAX_PATH_BYTES} bytes, {MAX_NAME_BYTES} per name)"
        )
    try:
        path = (root / raw.lstrip("/")).resolve() if not raw.startswith(str(root)) else Path(raw).resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, an unencodable name
        raise StackFlowError(Code.FILE, detail=f"the path cannot be resolved: {e}") from None
    if root not in path.parents:
        raise StackFlowError(Code.FILE, detail=f"only files under {root} can be pushed or pulled")
    if path.relative_to(root).parts[0] == PARTIAL_DIR:
        raise StackFlowError(Code.FILE, detail=f"{PARTIAL_DIR} holds unfinished uploads")
    if path.is_dir():
        raise StackFlowError(Code.FILE, detail=f"{raw} is a directory, not a file")
    return path


def _file_error(e: OSError) -> StackFlowError:
    return StackFlowError(Code.FILE, "Internal error, file opening failed.", detail=e.strerror or str(e))


def _sandbox_usage(root: Path, leaving: Path | None = None) -> int:
    """Bytes of the finished files in the sandbox, not counting `leaving` (about to be replaced)."""
    total = 0
    for folder, dirs, files in os.walk(root):
        if folder == str(root):
            dirs[:] = [d for d in dirs if d != PARTIAL_DIR]  # counted as open uploads instead
        for name in files:
            p = os.path.join(folder, name)
            if leaving is not None and p == str(leaving):
                continue
            try:
                total += os.lstat(p).st_size
            except OSError:
                pass
    return total


class Upload:
    """One sys.push stream being received. Chunks go to a partial file in the sandbox as they
    arrive (base64 decoded piece by piece), never into memory; the last one moves it into place.
    Open uploads count against the sandbox quota while they grow."""

    open_bytes: ClassVar[dict[Path, int]] = {}  # sandbox -> bytes written by all its open uploads

    def __init__(self, root: Path, target: Path, encoded: bool, max_size: int, quota: int, usage: int):
        self.root, self.target, self.encoded = root, target, encoded
        self.max_size, self.quota, self.usage = max_size, quota, usage  # usage: finished files at the start
        self.index = 0  # the chunk expected next
        self.size = 0
        self.sha = hashlib.sha256()
        self._tail = ""  # base64 characters not yet forming a whole 4-character group
        self._padded = False  # base64 padding seen: nothing may follow
        (root / PARTIAL_DIR).mkdir(exist_ok=True)
        self.tmp = root / PARTIAL_DIR / f"{uuid.uuid4().hex}.part"
        self._file: Any = open(self.tmp, "wb")  # noqa: SIM115 -- open across chunks, closed by finish/discard

    @classmethod
    async def begin(cls, cfg: Config, target: Path, encoded: bool) -> Upload:
        root = cfg.resolved_sandbox()
        try:
            usage = await asyncio.to_thread(_sandbox_usage, root, target)
            return cls(root, target, encoded, cfg.max_file_size, cfg.sandbox_quota, usage)
        except OSError as e:
            raise _file_error(e) from None

    async def write(self, delta: str, payload: bytes | None) -> None:
        chunk = payload if payload is not None else self._decode(delta)
        if self.size + len(chunk) > self.max_size:
            raise StackFlowError(Code.FILE, detail=f"the file would exceed {self.max_size} bytes (max_file_size)")
        if self.usage + Upload.open_bytes.get(self.root, 0) + len(chunk) > self.quota:
            raise StackFlowError(
                Code.FILE, detail=f"the sandbox would exceed its {self.quota}-byte quota (sandbox_quota)"
            )
        try:
            if len(chunk) > BIG_WRITE:
                await asyncio.to_thread(self._file.write, chunk)
            else:
                self._file.write(chunk)
        except OSError as e:
            raise _file_error(e) from None
        self.sha.update(chunk)
        self.size += len(chunk)
        Upload.open_bytes[self.root] = Upload.open_bytes.get(self.root, 0) + len(chunk)
        self.index += 1

    def _decode(self, delta: str) -> bytes:
        if not self.encoded:
            return delta.encode()
        text = self._tail + delta
        cut = len(text) - len(text) % 4
        block, self._tail = text[:cut], text[cut:]
        if block and self._padded:
            raise StackFlowError(Code.BASE64, detail="data after the base64 padding")
        self._padded = block.endswith("=")
        return decode_base64(block)

    async def finish(self) -> str:
        """Move the file into place; returns its sha256. The quota is checked again against the
        sandbox as it is now (other uploads may have finished meanwhile)."""
        if self._tail:
            raise StackFlowError(Code.BASE64, detail="the base64 text does not end on a whole 4-character group")
        try:
            await asyncio.to_thread(self._file.close)
            usage = await asyncio.to_thread(_sandbox_usage, self.root, self.target)
            others = Upload.open_bytes.get(self.root, 0) - self.size
            if usage + others + self.size > self.quota:
                raise StackFlowError(
                    Code.FILE, detail=f"the sandbox would exceed its {self.quota}-byte quota (sandbox_quota)"
                )
            self.target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp, self.target)
        except OSError as e:
            raise _file_error(e) from None
        finally:
            self.discard()
        return self.sha.hexdigest()

    def discard(self) -> None:
        """Forget the upload and remove its partial file (also when its connection closes)."""
        if self._file is None:
            return
        try:
            self._file.close()
        except OSError:
            pass
        self._file = None
        Upload.open_bytes[self.root] = Upload.open_bytes.get(self.root, 0) - self.size
        self.tmp.unlink(missing_ok=True)


def _store(root: Path, path: Path, content: bytes, quota: int) -> None:
    """Write a whole pushed file next to its place, then rename it there (a reader never sees half)."""
    if _sandbox_usage(root, path) + Upload.open_bytes.get(root, 0) + len(content) > quota:
        raise StackFlowError(Code.FILE, detail=f"the sandbox would exceed its {quota}-byte quota (sandbox_quota)")
    (root / PARTIAL_DIR).mkdir(exist_ok=True)
    tmp = root / PARTIAL_DIR / f"{uuid.uuid4().hex}.part"
    try:
        tmp.write_bytes(content)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@action("push")
async def push(router: Router, conn: Connection, req: Request) -> None:
    """Upload a file into the sandbox: `sys.file.<p>`, `sys.base64.file.<p>`, stream variants.
    Each file is limited to `max_file_size` bytes and all of them to `sandbox_quota`."""
    path = _sandboxed(router, req.object, ".file.")
    encoded = ".base64." in req.object
    if ".stream." in req.object:
        await _push_chunk(router, conn, req, path, encoded)
        return
    content = req.payload if req.payload is not None else req.data
    if isinstance(content, str):
        content = decode_base64(content) if encoded else content.encode()
    if not isinstance(content, bytes):
        raise StackFlowError(Code.JSON_FORMAT)
    cfg = router.cfg
    if len(content) > cfg.max_file_size:
        raise StackFlowError(
            Code.FILE, detail=f"the file has {len(content)} bytes; the limit is {cfg.max_file_size} (max_file_size)"
        )
    try:
        await asyncio.to_thread(_store, cfg.resolved_sandbox(), path, content, cfg.sandbox_quota)
    except OSError as e:
        raise _file_error(e) from None
    ok(conn, req, message=f"sha256:{hashlib.sha256(content).hexdigest()}")


async def _push_chunk(router: Router, conn: Connection, req: Request, path: Path, encoded: bool) -> None:
    data = req.data
    if not isinstance(data, dict):
        raise StackFlowError(Code.JSON_FORMAT)
    key = str(path)
    upload = cast("Upload | None", conn.uploads.get(key))  # the connection holds the uploads this action made
    index = data.get("index")
    if upload is not None and index != upload.index:
        conn.uploads.pop(key).discard()
        raise StackFlowError(Code.STREAM_INDEX)
    if upload is None:
        if index != 0:
            raise StackFlowError(Code.STREAM_INDEX)
        if len(conn.uploads) >= router.cfg.max_uploads:
            raise StackFlowError(
                Code.FILE,
                detail=f"{len(conn.uploads)} uploads are unfinished on this connection (max_uploads): finish one first",
            )
        upload = conn.uploads[key] = await Upload.begin(router.cfg, path, encoded)
    delta = data.get("delta", "")
    try:
        if not isinstance(delta, str):
            raise StackFlowError(Code.JSON_FORMAT, detail="delta must be a string")
        await upload.write(delta, req.payload)
        if not data.get("finish"):
            ok(conn, req)
            return
        conn.uploads.pop(key, None)
        digest = await upload.finish()
    except StackFlowError:
        conn.uploads.pop(key, None)
        upload.discard()
        raise
    ok(conn, req, message=f"sha256:{digest}")


def _read_base64(path: Path, limit: int) -> str:
    with open(path, "rb") as f:
        content = f.read(limit + 1)
    if len(content) > limit:
        raise StackFlowError(
            Code.FILE, detail=f"the file is over {limit} bytes (max_frame): pull it as a stream, sys.stream.file.<path>"
        )
    return base64.b64encode(content).decode()


@action("pull")
async def pull(router: Router, conn: Connection, req: Request) -> None:
    """Download a file from the sandbox, whole (up to `max_frame` bytes) or as a stream of
    1024-character chunks. Files are read in a worker thread, a block at a time, and each block is
    sent once the client has taken the previous one, so a big file neither blocks the daemon nor
    fills its memory."""
    path = _sandboxed(router, req.object, ".file.")
    if not path.is_file():
        raise StackFlowError(Code.FILE, "file does not exist.")
    try:
        if ".stream." not in req.object:
            ok(conn, req, await asyncio.to_thread(_read_base64, path, router.cfg.max_frame), "sys.base64.stream")
            return
        index = 0
        f = await asyncio.to_thread(open, path, "rb")
        try:
            while block := await asyncio.to_thread(f.read, PULL_BLOCK):
                text = base64.b64encode(block).decode()
                for i in range(0, len(text), PULL_CHUNK):
                    ok(
                        conn,
                        req,
                        {"delta": text[i : i + PULL_CHUNK], "index": index, "finish": False},
                        "sys.base64.stream",
                    )
                    index += 1
                writable = getattr(conn, "writable", None)  # in-process connections have no backlog
                if writable is not None:
                    await writable()
                if conn.closed:
                    return
        finally:
            f.close()
    except OSError as e:
        raise _file_error(e) from None
    ok(conn, req, {"delta": "", "index": index, "finish": True}, "sys.base64.stream")


def restart_command() -> list[str]:
    """How `sys.reboot` re-executes the daemon: the same interpreter and arguments."""
    return [sys.executable, *sys.argv] if sys.argv and sys.argv[0] else [sys.executable, "-m", "emberflow", "up"]


def reexec() -> None:
    cmd = restart_command()
    os.execv(cmd[0], cmd)
