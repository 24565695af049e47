"""Speech to text as Home Assistant asks for it: `transcribe{language}`, `audio-start`,
`audio-chunk`s, `audio-stop`; it reads only the final `transcript`. The utterance is sent to the
asr unit as one inference at `audio-stop` (HA's own VAD has already cut it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioFormat

from emberflow.bridges.wyoming.audio import UNIT_FORMAT, for_unit
from emberflow.bridges.wyoming.programs import ASR_KINDS
from emberflow.bridges.wyoming.tasks import BridgeError, check

if TYPE_CHECKING:
    from emberflow.bridges.wyoming.bridge import Bridge

MAX_SECONDS = 120  # one voice command; the asr unit itself refuses more than its max_input_seconds


class Transcription:
    def __init__(self, bridge: Bridge, request: Transcribe | None = None):
        self.bridge = bridge
        asked = request or Transcribe()
        self.model = bridge.models.pick("asr", asked.name, asked.language)
        if self.model is None:
            raise BridgeError("no speech recognition model is installed (emberflow models install whisper-tiny.en)")
        self.language = _language(asked.language) if asked.language else None
        self.format: AudioFormat = UNIT_FORMAT
        self.audio = bytearray()

    def start(self, fmt: AudioFormat) -> None:
        self.format = AudioFormat(rate=fmt.rate, width=fmt.width, channels=fmt.channels)
        self.audio.clear()

    def add(self, chunk: AudioChunk) -> None:
        if (chunk.rate, chunk.width, chunk.channels) != (self.format.rate, self.format.width, self.format.channels):
            if self.audio:
                raise BridgeError("the audio format changed within one utterance", code="audio-format")
            self.start(chunk)  # no audio-start (some clients): the first chunk says the format
        self.audio += chunk.audio
        if len(self.audio) > MAX_SECONDS * self.format.rate * self.format.width * self.format.channels:
            raise BridgeError(f"the utterance is longer than {MAX_SECONDS} s", code="too-long")

    async def finish(self) -> Transcript:
        if not self.audio:
            return Transcript(text="", language=self.language)
        params = {"model": self.model, "response_format": "asr.utf-8"}
        multilingual = len(self.bridge.models.asr.get(self.model or "", [])) > 1
        if self.language and multilingual:
            params["language"] = self.language
        conn = self.bridge.conn
        async with self.bridge.tasks.use(ASR_KINDS, params) as work_id:
            rid = await conn.infer(
                work_id, "None", f"{work_id.split('.')[0]}.pcm", payload=for_unit(bytes(self.audio), self.format)
            )
            text = ""
            async for msg in conn.outputs(work_id, rid):
                data = check(msg).get("data")
                text = data.get("delta", "") if isinstance(data, dict) else str(data or "")
        return Transcript(text=text.strip(), language=self.language)


def _language(code: str) -> str:
    """Whisper takes ISO 639-1 codes: `en-US` and `en_US` are `en`."""
    return code.replace("_", "-").split("-")[0].lower()
