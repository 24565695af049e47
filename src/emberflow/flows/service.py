"""`emberflow up FLOW`: the daemon starts the flow as its own in-process client once it
listens, and logs what the flow's units say (transcripts, answers)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emberflow.flows.spec import Flow
    from emberflow.gateways.local import LocalConnection
    from emberflow.sys.config import Config
    from emberflow.sys.router import Router

log = logging.getLogger("emberflow.flow")


async def start(router: Router, cfg: Config) -> Callable[[], Awaitable[None]] | None:
    if not cfg.flow:
        return None
    from emberflow.flows.spec import load
    from emberflow.gateways.local import LocalConnection

    flow = load(cfg.flow, set(router.units))  # fail at start-up, with the line to fix
    conn = LocalConnection(router, "flow", unsolicited=_report)  # what the flow's tasks say arrives here
    task = asyncio.create_task(_run(conn, flow))

    async def close() -> None:
        task.cancel()
        conn.close()

    return close


async def _run(conn: LocalConnection, flow: Flow) -> None:
    from emberflow.flows import runner

    try:
        work_ids = await runner.start_local(conn, flow)
    except Exception as e:  # the daemon keeps serving; the flow's failure is reported
        log.error("flow %s failed: %s", flow.name, e)
        return
    log.info("flow %s running: %s", flow.name, ", ".join(f"{k}={v}" for k, v in work_ids.items()))
    print(f"emberflow: flow {flow.name} running", flush=True)


def _report(msg: dict[str, Any]) -> None:
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
