"""Audio routing and wake handling: which tasks the audio unit (microphone and speaker) follows.

A policy, not routing: it reacts to the task table's lifecycle events and acts as a client of
the router (through sys's own in-process connection), so the router knows nothing of audio.

- `sys.pcm` as a setup input means the microphone: the audio task, set up on demand with the
  configured defaults (`resolve_source`).
- A task whose `response_format` is `sys.pcm` (a TTS speaking to the speaker) is followed by
  the audio task, which plays it.
- Wake-word tasks (units declaring system frames) are followed too: the audio unit stops
  playback on its own thread at a wake (barge-in) and plays the wake chime (`enwake_audio`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from emberflow.protocol.errors import Code, StackFlowError
from emberflow.sys.tasks import Event, TaskLinked, TaskRecord, TaskStarted, TaskTable

log = logging.getLogger("emberflow.audio_policy")

AUDIO = "audio"  # the audio task has no number: StackFlow answers work_id "audio"


class Requester(Protocol):
    async def request(
        self,
        work_id: str,
        action: str,
        object: str = "None",
        data: Any = "None",
        timeout: float = 120.0,
        payload: bytes | None = None,
    ) -> dict[str, Any]: ...


class AudioPolicy:
    def __init__(self, table: TaskTable, client: Requester, defaults: dict[str, Any]):
        self.table, self.client, self.defaults = table, client, defaults
        self._background: set[asyncio.Task[None]] = set()

    async def resolve_source(self, entry: str) -> str:
        """What a setup's input entry names: `sys.*` is the microphone (the audio task)."""
        if not entry.startswith("sys"):
            return entry
        if AUDIO not in self.table:
            await self._ensure_audio()
        return AUDIO

    def on_event(self, event: Event) -> None:
        if isinstance(event, TaskStarted):
            rec = event.record
            if _plays(rec):
                self._follow(rec.work_id, *(i for i in rec.inputs if self._is_wake(i)))
            if rec.system_frames and rec.params.get("enwake_audio", True) is not False:
                self._follow(rec.work_id)  # its chime
        elif isinstance(event, TaskLinked) and event.linked:
            player = self.table.get(event.work_id)
            if player is not None and _plays(player) and self._is_wake(event.source):
                self._follow(event.source)  # the player's new wake word

    def _is_wake(self, work_id: str) -> bool:
        rec: TaskRecord | None = self.table.get(work_id)
        return rec is not None and rec.system_frames

    def _follow(self, *sources: str) -> None:
        task = asyncio.get_running_loop().create_task(self._link_audio(sources))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _ensure_audio(self) -> None:
        answer = await self.client.request(AUDIO, "setup", "audio.setup", dict(self.defaults))
        if answer["error"]["code"] != 0:
            raise StackFlowError(Code.LINK, detail=f"the audio unit (sys.pcm) failed: {answer.get('data')}")

    async def _link_audio(self, sources: tuple[str, ...]) -> None:
        """Link the audio task to these tasks (creating it if needed), so it plays a TTS's sound
        and stops at once on a wake, on its own thread rather than after a clause ends."""
        try:
            if AUDIO not in self.table:
                await self._ensure_audio()
            for source in sources:
                if source in self.table:
                    await self.client.request(AUDIO, "link", "work_id", source)
        except StackFlowError as e:
            log.error("the audio unit cannot follow %s: %s", ", ".join(sources), e)


def _plays(rec: TaskRecord) -> bool:
    """Its output is sound for the speaker (`response_format: sys.pcm`)."""
    return rec.kind != AUDIO and str(rec.params.get("response_format", "")).startswith("sys")
