"""Text to speech, one-shot and streaming, as Home Assistant sends them.

- `synthesize{text, voice}` -> `audio-start`, `audio-chunk`s, `audio-stop`: one tts inference;
  the unit synthesises clause by clause and each clause's audio goes out as it is ready.
- `synthesize-start`, `synthesize-chunk`s (LLM deltas), `synthesize-stop` -> for each sentence
  `audio-start`, chunks, `audio-stop`, then `synthesize-stopped`. A sentence goes to the unit as
  soon as it is complete, so speech starts before the text ends. Every sentence has the same
  audio format (HA builds its WAV header from the first `audio-start`); the `synthesize` copy HA
  sends for older servers during a stream is ignored by the handler.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from wyoming.audio import AudioStart, AudioStop
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeStart, SynthesizeStopped, SynthesizeVoice

from emberflow.bridges.wyoming.audio import CHANNELS, RATE, WIDTH, chunks
from emberflow.bridges.wyoming.programs import TTS_KINDS
from emberflow.bridges.wyoming.tasks import BridgeError, check

if TYPE_CHECKING:
    from emberflow.bridges.wyoming.bridge import Bridge

Write = Callable[[Event], Awaitable[None]]
# A sentence is complete at its end mark followed by white space (a closing quote may sit between).
SENTENCE_END = re.compile(r"[.!?。！？…]+[\"'”’)\]]*\s+")


def _params(bridge: Bridge, voice: SynthesizeVoice | None) -> dict[str, Any]:
    model = bridge.models.pick("tts", voice.name if voice else None, voice.language if voice else None)
    if model is None:
        raise BridgeError("no voice is installed (emberflow models install piper-en-us-joe-medium)")
    return {"model": model, "response_format": "tts.pcm.stream", "audio_rate": RATE}


async def _speak(bridge: Bridge, write: Write, work_id: str, rid: str, timestamp: int) -> int:
    """Write the audio answering request `rid` as chunks; returns the stream position (ms)."""
    async for msg in bridge.conn.outputs(work_id, rid):
        data = check(msg).get("data")
        audio = data.get("delta") if isinstance(data, dict) else data
        if isinstance(audio, bytes | bytearray) and audio:
            for chunk in chunks(bytes(audio), timestamp):
                await write(chunk.event())
            timestamp += len(audio) * 1000 // (RATE * WIDTH * CHANNELS)
    return timestamp


async def synthesize(bridge: Bridge, write: Write, request: Synthesize) -> None:
    params = _params(bridge, request.voice)
    async with bridge.tasks.use(TTS_KINDS, params) as work_id:
        rid = await bridge.conn.infer(work_id, request.text, f"{work_id.split('.')[0]}.utf-8")
        await write(AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS, timestamp=0).event())
        end = await _speak(bridge, write, work_id, rid, 0)
        await write(AudioStop(timestamp=end).event())


class StreamingSynthesis:
    """One `synthesize-start` ... `synthesize-stop` stream. Sentences are queued to the tts task
    as they complete while earlier ones are still being spoken."""

    def __init__(self, bridge: Bridge, write: Write, start: SynthesizeStart):
        self.bridge, self.write = bridge, write
        self.params = _params(bridge, start.voice)
        self.pending = ""
        self.sentences: asyncio.Queue[str | None] = asyncio.Queue()
        self.spoken = 0
        self.runner = asyncio.get_running_loop().create_task(self._run())

    def add(self, text: str) -> None:
        self.pending += text
        cut = 0
        for m in SENTENCE_END.finditer(self.pending):
            self.sentences.put_nowait(self.pending[cut : m.end()].strip())
            cut = m.end()
        self.pending = self.pending[cut:]

    async def stop(self) -> None:
        """`synthesize-stop`: speak the rest, then say `synthesize-stopped`."""
        if self.pending.strip():
            self.sentences.put_nowait(self.pending.strip())
        self.pending = ""
        self.sentences.put_nowait(None)
        await self.runner
        await self.write(SynthesizeStopped().event())

    def cancel(self) -> None:
        self.runner.cancel()

    async def _run(self) -> None:
        conn = self.bridge.conn
        async with self.bridge.tasks.use(TTS_KINDS, self.params) as work_id:
            rids: asyncio.Queue[str | None] = asyncio.Queue()

            async def submit() -> None:
                while (sentence := await self.sentences.get()) is not None:
                    if sentence:
                        await rids.put(await conn.infer(work_id, sentence, f"{work_id.split('.')[0]}.utf-8"))
                await rids.put(None)

            submitter = asyncio.get_running_loop().create_task(submit())
            try:
                timestamp = 0
                while (rid := await rids.get()) is not None:
                    await self.write(AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS, timestamp=timestamp).event())
                    timestamp = await _speak(self.bridge, self.write, work_id, rid, timestamp)
                    await self.write(AudioStop(timestamp=timestamp).event())
                    self.spoken += 1
            finally:
                submitter.cancel()
