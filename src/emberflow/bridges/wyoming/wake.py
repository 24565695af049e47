"""Wake word detection on streamed audio: `detect{names}`, `audio-start`, `audio-chunk`s until
`audio-stop`. Each chunk is one inference on a kws task (the microWakeWord model keeps its
streaming state between them); a detection goes out at once as `detection{name, timestamp}`, and
`audio-stop` with no detection answers `not-detected`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from wyoming.audio import AudioChunk, AudioFormat
from wyoming.event import Event
from wyoming.wake import Detect, Detection, NotDetected

from emberflow.bridges.wyoming.audio import UNIT_FORMAT, for_unit
from emberflow.bridges.wyoming.programs import WAKE_KINDS
from emberflow.bridges.wyoming.tasks import BridgeError, check

if TYPE_CHECKING:
    from emberflow.bridges.wyoming.bridge import Bridge

Write = Callable[[Event], Awaitable[None]]


class WakeDetection:
    def __init__(self, bridge: Bridge, write: Write, request: Detect | None = None):
        self.bridge, self.write = bridge, write
        known = bridge.models.wake
        if not known or bridge.models.wake_model is None:
            raise BridgeError("no wake word model is installed (emberflow models install micro-wakeword)")
        asked = [_keyword(n) for n in (request.names if request and request.names else [])]
        self.keyword = next((k for k in asked if k in known), next(iter(known)))
        self.params = {
            "model": bridge.models.wake_model,
            "kws": self.keyword,
            "enwake_audio": False,
            "response_format": "kws.bool",
        }
        self.format: AudioFormat = UNIT_FORMAT
        self.heard_ms = 0
        self.detections = 0
        self.audio: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue()
        self.runner = asyncio.get_running_loop().create_task(self._run())

    def start(self, fmt: AudioFormat) -> None:
        self.format = AudioFormat(rate=fmt.rate, width=fmt.width, channels=fmt.channels)

    def add(self, chunk: AudioChunk) -> None:
        fmt = AudioFormat(rate=chunk.rate, width=chunk.width, channels=chunk.channels)
        at = chunk.timestamp if chunk.timestamp is not None else self.heard_ms
        self.heard_ms = at + len(chunk.audio) * 1000 // (fmt.rate * fmt.width * fmt.channels)
        self.audio.put_nowait((for_unit(chunk.audio, fmt), self.heard_ms))

    async def stop(self) -> None:
        self.audio.put_nowait(None)
        await self.runner
        if not self.detections:
            await self.write(NotDetected().event())

    def cancel(self) -> None:
        self.runner.cancel()

    async def _run(self) -> None:
        conn = self.bridge.conn
        async with self.bridge.tasks.use(WAKE_KINDS, self.params) as work_id:
            while (item := await self.audio.get()) is not None:
                audio, heard_ms = item
                rid = await conn.infer(work_id, "None", "kws.pcm", payload=audio)
                async for msg in conn.outputs(work_id, rid):
                    if check(msg).get("data") is True:
                        self.detections += 1
                        await self.write(Detection(name=self.keyword, timestamp=heard_ms).event())


def _keyword(name: str) -> str:
    """`Hey Jarvis`, `hey-jarvis` and `hey_jarvis` name one model."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")
