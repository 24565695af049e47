"""`emberflow up FLOW`: the daemon starts the flow as its own client once it listens, and logs
what the flow's units say (transcripts, answers)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Awaitable, Callable

if TYPE_CHECKING:
    from emberflow.sys.config import Config
    from emberflow.sys.router import Router

log = logging.getLogger("emberflow.flow")


async def start(router: "Router", cfg: "Config") -> Callable[[], Awaitable[None]] | None:
    if not cfg.flow:
        return None
    from emberflow.flows.spec import load

    flow = load(cfg.flow, set(router.units))  # fail at start-up, with the line to fix
    stopping = threading.Event()
    thread = threading.Thread(target=_run, args=(cfg, flow, stopping), name="flow", daemon=True)
    # The TCP server is listening by the time services start; the thread connects to it.
    asyncio.get_running_loop().call_soon(thread.start)

    async def close() -> None:
        stopping.set()

    return close


def _run(cfg: "Config", flow, stopping: threading.Event) -> None:
    from emberflow.client import Client
    from emberflow.flows import runner

    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
    try:
        with Client(host, cfg.port, timeout=300) as client:
            if cfg.token:
                client.request("sys", "auth", "sys.utf-8", cfg.token)
            work_ids = runner.start(client, flow)
            log.info("flow %s running: %s", flow.name, ", ".join(f"{k}={v}" for k, v in work_ids.items()))
            print(f"emberflow: flow {flow.name} running", flush=True)
            while not stopping.is_set():
                try:
                    msg = client.next_message(timeout=0.5)
                except TimeoutError:
                    continue
                _report(msg)
    except Exception as e:  # the daemon keeps serving; the flow's failure is reported
        log.error("flow %s failed: %s", flow.name, e)


def _report(msg: dict) -> None:
    from emberflow.vision.report import line

    data, obj = msg.get("data"), msg.get("object", "")
    if msg.get("error", {}).get("code"):
        log.warning("%s: %s %s", msg.get("work_id"), msg["error"], data)
    elif (seen := line(msg)) is not None:  # detections per frame, classes, text read
        print(seen, flush=True)
    elif obj.startswith("asr") and (not isinstance(data, dict) or data.get("finish")):
        print(f"heard: {data['delta'] if isinstance(data, dict) else data}", flush=True)
    elif obj == "kws.bool":
        print("wake word", flush=True)
    elif obj.startswith(("llm", "vlm")) and isinstance(data, dict):
        print(data.get("delta", ""), end="\n" if data.get("finish") else "", flush=True)
    elif obj.startswith(("llm", "vlm")):
        print(f"answer: {data}", flush=True)
