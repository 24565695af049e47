"""Speech synthesis units `tts` and `melotts`: Piper (VITS, ONNX) by default, espeak-ng as the
zero-weight fallback.

Text is synthesised clause by clause as it streams in from a linked LLM, so the first words
play while the LLM is still writing. `response_format: sys.pcm` plays on the audio unit (the
router links it); stream formats return base64 PCM chunks (16 kHz S16LE mono); other formats
return one base64 payload (a WAV file when the format contains "wav"). A wake word stops
playback, drops queued audio and the text not yet spoken.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any, Iterator

from pydantic import AliasChoices, Field

from emberflow.unit import IO, Code, Final, Unit, UnitError, UnitParams
from emberflow.voice import pcm

# StackFlow splits at these; a clause ends at one followed by a space, or at the end of text.
CLAUSE_END = re.compile(r"([.!?;。！？；，、,])(\s+|$)")


class TTSParams(UnitParams):
    response_format: str = "sys.pcm"
    audio_rate: int = Field(16000, ge=8000, le=48000, description="Output sample rate (Hz).")
    speed: float = Field(1.0, ge=0.3, le=3.0, validation_alias=AliasChoices("speed", "spacker_speed"))
    min_clause_chars: int = Field(12, ge=0, le=200, description="Clauses shorter than this wait for more text.")
    engine: str = Field("piper", description="'piper' or 'espeak' (set by the model descriptor).")
    voice: str = Field("en-us", description="espeak-ng voice, when engine is espeak.")


class TTSUnit(Unit[TTSParams]):
    """Text to speech (Piper; espeak-ng fallback)."""

    kind = "tts"
    model_type = "tts"
    Params = TTSParams
    inputs = {"text": IO.TEXT}
    outputs = {"audio": IO.AUDIO_PCM}
    stream_per_call = False  # one answer may span many LLM deltas; we end it with Final
    model_path: Any = None

    def setup(self, params: TTSParams) -> None:
        self.p = params
        self.pending = ""  # text received but not yet spoken
        self.collected: list[bytes] = []  # whole-payload formats
        self.spoken_clauses = 0
        if params.engine == "espeak":
            if not shutil.which("espeak-ng"):
                raise UnitError(Code.MODEL_LOADING, detail="espeak-ng is not installed (apt-get install espeak-ng)")
            self.voice = None
        else:
            from piper import PiperVoice, SynthesisConfig

            if self.model_path is None:
                raise UnitError(Code.MODEL_LOADING, detail="Piper voice not found")
            self.voice = PiperVoice.load(str(self.model_path), config_path=f"{self.model_path}.json")
            self.syn = SynthesisConfig(length_scale=1.0 / params.speed)
            list(self.voice.synthesize("Ready.", self.syn))  # warm the ONNX session: first audio is sooner

    # --- synthesis ------------------------------------------------------------------------
    def synth(self, text: str) -> bytes:
        if self.voice is None:
            wav = subprocess.run(["espeak-ng", "--stdout", "-v", self.p.voice, "-s", str(int(175 * self.p.speed)),
                                  text], capture_output=True, timeout=30, check=True).stdout
            audio = pcm.decode(wav)
        else:
            import numpy as np

            chunks = [c.audio_int16_array for c in self.voice.synthesize(text, self.syn)]
            if not chunks:
                return b""
            audio = pcm.resample(np.concatenate(chunks), self.voice.config.sample_rate, pcm.RATE)
        if self.p.audio_rate != pcm.RATE:
            audio = pcm.resample(audio, pcm.RATE, self.p.audio_rate)
        return audio.tobytes()

    def _say(self, clause: str) -> Iterator[Any]:
        audio = self.synth(clause)
        if not audio:
            return
        self.spoken_clauses += 1
        fmt = self.p.response_format
        if fmt.startswith("sys"):
            self.context.emit("sys.pcm", {"rate": self.p.audio_rate}, audio)  # to the audio unit
        elif "stream" in fmt:
            yield audio
        else:
            self.collected.append(audio)

    def _end(self) -> Iterator[Any]:
        fmt = self.p.response_format
        if fmt.startswith("sys"):
            return
        if "stream" in fmt:
            yield Final(b"")
            return
        audio, self.collected = b"".join(self.collected), []
        yield Final(pcm.to_wav(audio, self.p.audio_rate) if "wav" in fmt else audio)

    def _clauses(self, final: bool) -> list[str]:
        """Complete clauses from the pending text (all of it when final)."""
        out, start = [], 0
        for m in CLAUSE_END.finditer(self.pending):
            if m.end() - start >= self.p.min_clause_chars:
                out.append(self.pending[start:m.end()].strip())
                start = m.end()
        self.pending = self.pending[start:]
        if final and self.pending.strip():
            rest = self.pending.strip()
            out.append(rest if rest[-1] in ".!?。！？" else rest + ".")
            self.pending = ""
        return [c for c in out if c]

    # --- inputs ---------------------------------------------------------------------------
    def infer(self, text: str) -> Iterator[Any]:
        self.pending += text
        for clause in self._clauses(final=True):
            yield from self._say(clause)
        yield from self._end()

    def on_frame(self, frame) -> Iterator[Any] | None:
        data = frame.data
        if isinstance(data, dict) and "delta" in data:  # an LLM streaming its answer
            if isinstance(data.get("delta"), str):
                self.pending += data["delta"]
            return self._speak_ready(final=bool(data.get("finish")))
        if isinstance(data, str) and data:
            self.pending += data
            return self._speak_ready(final=True)
        return None

    def _speak_ready(self, final: bool) -> Iterator[Any]:
        for clause in self._clauses(final):
            yield from self._say(clause)
        if final:
            yield from self._end()

    def on_wake(self, frame=None) -> None:
        """Barge-in: forget unspoken text and tell the audio unit to stop at once."""
        self.pending = ""
        self.collected = []
        if self.p.response_format.startswith("sys"):
            self.context.emit("sys.pcm.stop", None, system=True)
        return None

    def info(self) -> dict[str, Any]:
        return {"engine": self.p.engine, "clauses_spoken": self.spoken_clauses, "pending_chars": len(self.pending)}


class MeloTTSUnit(TTSUnit):
    """StackFlow's `melotts` unit name, served by the same synthesiser."""

    kind = "melotts"
