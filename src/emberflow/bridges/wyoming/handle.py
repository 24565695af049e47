"""Conversation: `transcript{text, context}` -> the llm unit -> `handled{text, context}`, or
`not-handled` with the reason when the unit cannot answer. Home Assistant ignores the
`handled-start/chunk/stop` stream, so one whole answer is sent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wyoming.asr import Transcript
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled

from emberflow.bridges.wyoming.programs import HANDLE_KINDS
from emberflow.bridges.wyoming.tasks import BridgeError, check

if TYPE_CHECKING:
    from emberflow.bridges.wyoming.bridge import Bridge

MAX_TOKENS = 160  # a spoken answer: a few sentences


async def handle(bridge: Bridge, transcript: Transcript) -> Event:
    model = bridge.models.pick("handle")
    if model is None:
        return NotHandled(text="no language model is installed", context=transcript.context).event()
    params = {"model": model, "response_format": "llm.utf-8", "max_token_len": MAX_TOKENS}
    try:
        async with bridge.tasks.use(HANDLE_KINDS, params) as work_id:
            rid = await bridge.conn.infer(work_id, transcript.text, "llm.utf-8")
            pieces = []
            async for msg in bridge.conn.outputs(work_id, rid):
                data = check(msg).get("data")
                pieces.append(data.get("delta", "") if isinstance(data, dict) else str(data or ""))
    except BridgeError as e:
        return NotHandled(text=e.text, context=transcript.context).event()
    return Handled(text="".join(pieces).strip(), context=transcript.context).event()
