"""Home Assistant's event sequences, sent with the `wyoming` package's own client (nobody on the
team wrote it): what HA's Wyoming integration does, as the spec reads it in its code."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice
from wyoming.wake import Detect

RATE, WIDTH, CHANNELS = 16000, 2, 1  # what HA's STT sends
CHUNK_BYTES = 2048  # 1024 samples
TIMEOUT = 120.0


@dataclass
class Audio:
    """What a server answered with audio: the events in order and the audio itself."""

    events: list[Event] = field(default_factory=list)
    audio: bytes = b""

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def formats(self) -> set[tuple[int, int, int]]:
        return {
            (e.data["rate"], e.data["width"], e.data["channels"])
            for e in self.events
            if e.type in ("audio-start", "audio-chunk")
        }


class HomeAssistant:
    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.host, self.port = host, port

    def _client(self) -> AsyncTcpClient:
        return AsyncTcpClient(self.host, self.port, connect_timeout=10, read_timeout=TIMEOUT)

    async def _read(self, client: AsyncTcpClient) -> Event:
        event = await asyncio.wait_for(client.read_event(), TIMEOUT)
        assert event is not None, "the server closed the connection"
        return event

    @staticmethod
    async def _stream(c: AsyncTcpClient, audio: bytes, rate: int, width: int, channels: int) -> None:
        """audio-start, the audio in 1024-sample chunks, audio-stop."""
        await c.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        for i in range(0, len(audio), CHUNK_BYTES):
            await c.write_event(
                AudioChunk(rate=rate, width=width, channels=channels, audio=audio[i : i + CHUNK_BYTES]).event()
            )
        await c.write_event(AudioStop().event())

    async def describe(self) -> Info:
        async with self._client() as c:
            await c.write_event(Describe().event())
            return Info.from_event(await self._read(c))

    async def send(self, *events: Event) -> Event:
        """One connection, these events, the first event answered."""
        async with self._client() as c:
            for event in events:
                await c.write_event(event)
            return await self._read(c)

    async def transcribe(
        self, audio: bytes, language: str | None = "en", rate: int = RATE, width: int = WIDTH, channels: int = CHANNELS
    ) -> Transcript:
        async with self._client() as c:
            await c.write_event(Transcribe(language=language).event())
            await self._stream(c, audio, rate, width, channels)
            while True:  # HA reads only the final transcript
                event = await self._read(c)
                if Transcript.is_type(event.type):
                    return Transcript.from_event(event)
                assert event.type != "error", event.data

    async def synthesize(self, text: str, voice: str | None = None) -> Audio:
        async with self._client() as c:
            await c.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=voice) if voice else None).event())
            return await self._audio_until(c, "audio-stop")

    async def synthesize_streaming(self, pieces: list[str]) -> Audio:
        """HA 2025.7+: start, chunks, the compatibility `synthesize` copy, stop."""
        async with self._client() as c:
            await c.write_event(SynthesizeStart().event())
            for piece in pieces:
                await c.write_event(SynthesizeChunk(text=piece).event())
            await c.write_event(Synthesize(text="".join(pieces)).event())
            await c.write_event(SynthesizeStop().event())
            return await self._audio_until(c, "synthesize-stopped")

    async def _audio_until(self, c: AsyncTcpClient, last: str) -> Audio:
        out = Audio()
        while True:
            event = await self._read(c)
            assert event.type != "error", event.data
            out.events.append(event)
            if AudioChunk.is_type(event.type):
                out.audio += AudioChunk.from_event(event).audio
            if event.type == last:
                return out

    async def detect(self, audio: bytes, names: list[str]) -> list[Event]:
        """Wake word detection: the events up to `detection` or `not-detected`."""
        async with self._client() as c:
            await c.write_event(Detect(names=names).event())
            await self._stream(c, audio, RATE, WIDTH, CHANNELS)
            events = []
            while not events or events[-1].type not in ("detection", "not-detected", "error"):
                events.append(await self._read(c))
            return events
