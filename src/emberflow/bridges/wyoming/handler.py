"""One Wyoming connection: reads events with the `wyoming` package and answers each request
kind through its module. Home Assistant opens one connection per request, as the reference
servers expect; several requests on one connection work too."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop
from wyoming.wake import Detect

from emberflow.bridges.wyoming import tts
from emberflow.bridges.wyoming.handle import handle
from emberflow.bridges.wyoming.stt import Transcription
from emberflow.bridges.wyoming.tasks import BridgeError
from emberflow.bridges.wyoming.wake import WakeDetection

if TYPE_CHECKING:
    from emberflow.bridges.wyoming.bridge import Bridge

log = logging.getLogger("emberflow.wyoming")


class WyomingHandler(AsyncEventHandler):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bridge: Bridge):
        super().__init__(reader, writer)
        self.bridge = bridge
        self.stt: Transcription | None = None
        self.wake: WakeDetection | None = None
        self.stream: tts.StreamingSynthesis | None = None
        self._write_lock = asyncio.Lock()  # audio of a stream and an error may be written from two tasks

    async def write_event(self, event: Event) -> None:
        async with self._write_lock:
            await super().write_event(event)

    async def handle_event(self, event: Event) -> bool:
        try:
            return await self._dispatch(event)
        except BridgeError as e:
            log.warning("wyoming %s failed: %s", event.type, e.text)
            self.stt = None
            await self.write_event(Error(text=e.text, code=e.code).event())
            return True

    async def _dispatch(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self.bridge.info)
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        # --- speech to text, or audio for a wake word detection ---
        elif Transcribe.is_type(event.type):
            self.stt = Transcription(self.bridge, Transcribe.from_event(event))
        elif Detect.is_type(event.type):
            self.wake = WakeDetection(self.bridge, self.write_event, Detect.from_event(event))
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            if self.wake is not None:
                self.wake.start(start)
            else:
                self.stt = self.stt or Transcription(self.bridge)  # audio with no transcribe: transcribe it
                self.stt.start(start)
        elif AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            if self.wake is not None:
                self.wake.add(chunk)
            else:
                self.stt = self.stt or Transcription(self.bridge)
                self.stt.add(chunk)
        elif AudioStop.is_type(event.type):
            if self.wake is not None:
                wake, self.wake = self.wake, None
                await wake.stop()
            elif self.stt is not None:
                stt, self.stt = self.stt, None
                await self.write_event((await stt.finish()).event())
        # --- text to speech ---
        elif SynthesizeStart.is_type(event.type):
            self.stream = tts.StreamingSynthesis(self.bridge, self.write_event, SynthesizeStart.from_event(event))
        elif SynthesizeChunk.is_type(event.type):
            if self.stream is not None:
                self.stream.add(SynthesizeChunk.from_event(event).text)
        elif SynthesizeStop.is_type(event.type):
            if self.stream is not None:
                stream, self.stream = self.stream, None
                await stream.stop()
        elif Synthesize.is_type(event.type):
            if self.stream is None:  # during a stream it is the copy for servers without streaming
                await tts.synthesize(self.bridge, self.write_event, Synthesize.from_event(event))
        # --- conversation ---
        elif Transcript.is_type(event.type):
            await self.write_event(await handle(self.bridge, Transcript.from_event(event)))
        else:
            log.debug("wyoming: ignoring %s", event.type)  # servers drop events they do not know
        return True

    async def disconnect(self) -> None:
        """The client left: stop what it was waiting for (the unit's work is cancelled)."""
        for session in (self.stream, self.wake):
            if session is not None:
                session.cancel()
