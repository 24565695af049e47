"""HTTP routes of the dashboard, on the existing HTTP gateway (no port of its own).

- `/` is the page and `/dashboard/static/*` its files: public, they hold no data.
- `/dashboard/api/*` is guarded like every API route by the server token (the Guard), and by
  the same-origin rules of `security.py`; every POST is an action and needs the page's header.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from emberflow.serving.dashboard.hub import Hub
from emberflow.serving.dashboard.reports import Reports, catalogue_rows
from emberflow.serving.dashboard.security import SameOrigin

if TYPE_CHECKING:
    from emberflow.serving.gateway import Gateway

STATIC = Path(__file__).parent / "static"
VENDOR_FILES = ("alpine.min.js", "cytoscape.min.js", "uPlot.iife.min.js", "uPlot.min.css")
# The page runs only its own files. Alpine evaluates its attribute expressions with Function(),
# hence 'unsafe-eval'; no inline script runs, and nothing is fetched from another origin.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; frame-src 'self'; "
    "worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-cache",
}
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    etag: str
    media_type: str


class Assets:
    """The page's files, read once and kept in memory (about 600 KB): serving them costs no
    thread hop or disk access, which matters on a busy 2-core box. Only files inside the static
    folder with a known type exist here, so no path can leave it."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self._files: dict[str, Asset | None] = {}

    def get(self, name: str) -> Asset | None:
        if name not in self._files:
            path = (self.root / name).resolve()
            ok = self.root in path.parents and path.is_file() and path.suffix in STATIC_TYPES
            body = path.read_bytes() if ok else b""
            self._files[name] = (
                Asset(body, f'"{hashlib.sha1(body).hexdigest()[:16]}"', STATIC_TYPES[path.suffix]) if ok else None
            )
        return self._files[name]


def vendored() -> list[str]:
    """Vendored libraries that are missing (`make dashboard-assets` puts them there)."""
    return [f for f in VENDOR_FILES if not (STATIC / "vendor" / f).is_file()]


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


def build_router(gateway: Gateway) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    hub = Hub(gateway)
    origin = SameOrigin(gateway.cfg.http_host)
    reports = Reports(gateway.catalogue, gateway.cfg.resolved_sandbox(), gateway.cfg.model_repository)

    assets = Assets(STATIC)
    flow_list: list[dict[str, Any]] = []

    def read(request: Request) -> None:
        origin.check(request, action=False)

    def act(request: Request) -> None:
        origin.check(request, action=True)

    # --- the page ---------------------------------------------------------------------------------
    @router.get("/")
    @router.get("/dashboard/")
    async def page(request: Request) -> Response:
        read(request)
        missing = vendored()
        if missing:
            return HTMLResponse(
                f"<!doctype html><title>emberflow</title><p>The dashboard's libraries are not "
                f"installed ({', '.join(missing)}): run <code>make dashboard-assets</code>.</p>",
                status_code=503,
                headers=PAGE_HEADERS,
            )
        page = (
            (STATIC / "index.html").read_text().replace("{{TOKEN_REQUIRED}}", "1" if gateway.cfg.auth_required else "0")
        )
        return HTMLResponse(page, headers=PAGE_HEADERS)

    @router.get("/dashboard/static/{name:path}")
    async def static(name: str, request: Request) -> Response:
        file = assets.get(name)
        if file is None:
            raise HTTPException(404, "no such dashboard file")
        headers = {"cache-control": "no-cache", "etag": file.etag, "x-content-type-options": "nosniff"}
        if request.headers.get("if-none-match") == file.etag:  # a reload revalidates: nothing to send
            return Response(status_code=304, headers=headers)
        return Response(file.body, media_type=file.media_type, headers=headers)

    # --- reading ----------------------------------------------------------------------------------
    @router.get("/dashboard/api/stream")
    async def stream(request: Request) -> StreamingResponse:
        read(request)

        async def events() -> AsyncIterator[bytes]:
            yield b"retry: 1000\n\n"
            async for name, data in hub.stream():
                yield _sse(name, data)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"cache-control": "no-store", "x-accel-buffering": "no"}
        )

    @router.get("/dashboard/api/state")
    async def state(request: Request) -> JSONResponse:
        read(request)
        return JSONResponse({**hub.hello(), "snapshot": await hub.snapshot()})

    @router.get("/dashboard/api/models")
    async def models(request: Request) -> JSONResponse:
        read(request)
        # the catalogue checks installed packages on disk: off the event loop, which serves the stream
        return JSONResponse(await asyncio.to_thread(_models, gateway, reports))

    @router.get("/dashboard/api/flows")
    async def flows(request: Request) -> JSONResponse:
        read(request)
        if not flow_list:  # the built-in flow files do not change while the daemon runs
            flow_list.extend(await asyncio.to_thread(_flows))
        listed = flow_list
        return JSONResponse({"flows": [{**f, "running": hub.flows.get(f["name"])} for f in listed]})

    @router.get("/dashboard/api/camera")
    async def camera(request: Request, work_id: str | None = None) -> JSONResponse:
        read(request)
        latest = await asyncio.to_thread(hub.camera.latest, work_id)
        if latest is None:  # not an error: the page polls while the last camera task ends
            return JSONResponse({"work_id": None, "seq": 0, "jpeg": None, "detections": [], "detectors": []})
        jpeg = latest.pop("jpeg")
        latest["jpeg"] = base64.b64encode(jpeg).decode() if jpeg else None
        return JSONResponse(latest)

    # --- actions ----------------------------------------------------------------------------------
    @router.post("/dashboard/api/tasks/{work_id}/exit")
    async def exit_task(work_id: str, request: Request) -> JSONResponse:
        act(request)
        if work_id not in gateway.router.tasks:
            raise HTTPException(404, f"no task {work_id}")
        # The person holding the server token runs the box: sys's own connection may end any task.
        answer = await gateway.router.internal.request(work_id, "exit", timeout=30)
        return _answer(answer)

    @router.post("/dashboard/api/reset")
    async def reset(request: Request) -> JSONResponse:
        act(request)
        answer = await gateway.router.internal.request("sys", "reset", timeout=60)
        await hub.ptt.stop()
        hub.flows.clear()
        return _answer(answer)

    @router.post("/dashboard/api/flows/{name}/start")
    async def start_flow(name: str, request: Request) -> JSONResponse:
        act(request)
        from emberflow.client import ServerError
        from emberflow.flows.runner import start_local
        from emberflow.flows.spec import FlowError, load

        try:
            flow = load(name, set(gateway.router.units))
        except FlowError as e:
            raise HTTPException(404, str(e)) from None
        if name in hub.flows and all(w in gateway.router.tasks for w in hub.flows[name].values()):
            return JSONResponse({"ok": True, "work_ids": hub.flows[name]})
        try:
            hub.flows[flow.name] = await start_local(hub.conn, flow)
        except ServerError as e:
            raise HTTPException(502, f"flow {name} failed: {e}") from None
        return JSONResponse({"ok": True, "work_ids": hub.flows[flow.name]})

    @router.post("/dashboard/api/flows/{name}/stop")
    async def stop_flow(name: str, request: Request) -> JSONResponse:
        act(request)
        work_ids = hub.flows.pop(name, {})
        for work_id in reversed(list(work_ids.values())):
            if work_id in gateway.router.tasks:
                await hub.conn.request(work_id, "exit", timeout=30)
        return JSONResponse({"ok": True, "stopped": list(work_ids.values())})

    @router.post("/dashboard/api/voice/start")
    async def voice_start(request: Request) -> JSONResponse:
        act(request)
        return JSONResponse(await hub.ptt.start())

    @router.post("/dashboard/api/voice/stop")
    async def voice_stop(request: Request) -> JSONResponse:
        act(request)
        await hub.ptt.stop()
        return JSONResponse(hub.ptt.public())

    @router.post("/dashboard/api/voice/audio")
    async def voice_audio(request: Request) -> JSONResponse:
        """A piece of the recording: 16 kHz S16LE mono, as the page's audio worklet makes it."""
        act(request)
        try:
            seconds = await hub.ptt.push(await request.body())
        except RuntimeError as e:
            raise HTTPException(409, str(e)) from None
        return JSONResponse({"pushed_seconds": round(seconds, 3)})

    @router.post("/dashboard/api/voice/release")
    async def voice_release(request: Request) -> JSONResponse:
        act(request)
        if hub.ptt.state != "ready":
            raise HTTPException(409, "push-to-talk is not set up")
        return JSONResponse({"pushed_seconds": round(await hub.ptt.release(), 3)})

    @router.post("/dashboard/api/models/upload")
    async def upload(request: Request, name: str) -> JSONResponse:
        act(request)
        try:
            f = await asyncio.to_thread(reports.upload, name, await request.body())
        except ValueError as e:
            raise HTTPException(400, str(e)) from None
        return JSONResponse(f.public())

    @router.post("/dashboard/api/models/report")
    async def report(request: Request, body: dict[str, Any] = Body(...)) -> JSONResponse:
        act(request)
        kind = body.get("kind", "analyze")
        if kind not in ("analyze", "check"):
            raise HTTPException(400, "kind is analyze or check")
        f = await asyncio.to_thread(reports.find, str(body.get("file", "")))
        if f is None:
            raise HTTPException(404, "no such model file (pick one the dashboard listed, or upload it)")
        shapes = [s for s in body.get("shapes", []) if isinstance(s, str)][:8]
        target = body.get("target") if isinstance(body.get("target"), str) else None
        result = await reports.report(f, kind, target, shapes)
        return JSONResponse(result, status_code=200 if result["ok"] else 422)

    return router


def _models(gateway: Gateway, reports: Reports) -> dict[str, Any]:
    from emberflow.targets import list_targets

    catalogue = catalogue_rows(gateway.catalogue)
    return {
        "catalogue": catalogue,
        "files": [f.public() for f in reports.files()],
        "targets": [{"name": t.name, "description": t.description} for t in list_targets()],
        "chat_models": [r["mode"] for r in catalogue if r["type"] == "llm" and r["installed"]],
        "default_llm": gateway.default_model("llm"),
    }


def _flows() -> list[dict[str, Any]]:
    from emberflow.flows.spec import BUILTIN, load

    return [
        {"name": f.name, "description": f.description, "units": list(f.units)}
        for f in (load(path) for path in sorted(BUILTIN.glob("*.yaml")))
    ]


def _answer(answer: dict[str, Any]) -> JSONResponse:
    error = answer.get("error", {})
    ok = error.get("code", 0) == 0
    return JSONResponse({"ok": ok, "error": error, "data": answer.get("data")}, status_code=200 if ok else 409)
