"""In-process clients of the router (what the HTTP gateway and flows use), on a real router and
real unit processes."""

from __future__ import annotations

import asyncio
import os

from emberflow.gateways.local import LocalConnection
from emberflow.sys.actions import ACTIONS
from emberflow.sys.config import Config
from emberflow.sys.router import Router
from emberflow.unit.registry import known_units


def test_local_connection_drives_units(tmp_path):
    os.environ["PYTHONPATH"] = os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])

    async def scenario():
        router = Router(Config(rundir=str(tmp_path / "run")), known_units({"echo": "units_for_tests:EchoUnit"}))
        router.sys_actions = ACTIONS
        serving = asyncio.create_task(router.serve_units())
        try:
            conn = LocalConnection(router, "http")
            assert (await conn.request("sys", "ping"))["error"]["code"] == 0
            setup = await conn.request("echo", "setup", "echo.setup", {"times": 2})
            work_id = setup["work_id"]
            rid = await conn.infer(work_id, {"delta": "hi", "index": 0, "finish": True}, "echo.utf-8.stream")
            deltas = [m["data"]["delta"] async for m in conn.outputs(work_id, rid)]
            assert deltas == ["hi", "hi", ""]
            # an inference-data error (StackFlow gives it the last control request_id) still reaches us
            rid = await conn.infer(work_id, {"delta": "x", "index": 4, "finish": True}, "echo.utf-8.stream")
            errors = [m async for m in conn.outputs(work_id, rid, timeout=10)]
            assert errors[-1]["error"]["code"] == -25
            assert (await conn.request(work_id, "exit"))["error"]["code"] == 0
            conn.close()
        finally:
            serving.cancel()
            await router.close()

    asyncio.run(scenario())
