"""Speech synthesis units `tts` and `melotts`: Piper (VITS, ONNX) by default, espeak-ng as the
zero-weight fallback.

Text is synthesised as it streams in from a linked LLM: the first chunk of each answer as soon
as it has `first_chunk_words` words (or reaches a comma), so the first words play while the LLM
is still writing, then clause by clause; and when the audio already sent is about to run out
(`min_runway`), the complete words waiting are spoken without waiting for the clause's end, so
the answer does not stop mid-sentence while the LLM writes. Piper's ONNX session uses `cpu_threads` threads that
sleep when idle, so synthesis and llama.cpp share the two cores without spinning.
`response_format: sys.pcm` plays on the audio unit (the router links it); stream formats return
base64 PCM chunks (16 kHz S16LE mono); other formats return one base64 payload (a WAV file when
the format contains "wav"). A wake word stops playback, drops queued audio and the text not yet
spoken.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

from pydantic import AliasChoices, Field

from emberflow.unit import IO, Code, Final, Unit, UnitError, UnitParams
from emberflow.voice import pcm
from emberflow.voice.cpu import renice_process
from emberflow.voice.unfinished import needs_continuation

# StackFlow splits at these; a clause ends at one followed by a space, or at the end of text.
CLAUSE_END = re.compile(r"([.!?;。！？；，、,])(\s+|$)")
WORD_END = re.compile(r"\S+\s+")
FIRST_CHUNK_MAX_WORDS = 8  # the first chunk may grow past function words ("of", "the"), not further


class TTSParams(UnitParams):
    response_format: str = "sys.pcm"
    audio_rate: int = Field(16000, ge=8000, le=48000, description="Output sample rate (Hz).")
    speed: float = Field(1.0, ge=0.3, le=3.0, validation_alias=AliasChoices("speed", "spacker_speed"))
    min_clause_chars: int = Field(12, ge=0, le=200, description="Clauses shorter than this wait for more text.")
    engine: str = Field("piper", description="'piper' or 'espeak' (set by the model descriptor).")
    voice: str = Field("en-us", description="espeak-ng voice, when engine is espeak.")
    first_chunk_words: int = Field(
        4,
        ge=0,
        le=20,
        description="Speak the first words of an answer as soon as this many have arrived (0: wait for a clause).",
    )
    min_runway: float = Field(
        0.4,
        ge=0,
        le=30,
        description="When the audio sent will have played out within this many seconds, the complete "
        "words waiting are spoken at once instead of waiting for the clause to end (0: always wait).",
    )
    cpu_threads: int = Field(0, ge=0, le=64, description="Piper's ONNX threads; 0 = all cores.")
    nice: int = Field(0, ge=0, le=19, description="Nice value (at least) of this unit process's threads.")


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
        self.chunks: list[dict[str, Any]] = []  # recent chunks: words, and whether the text had ended
        self.answer_chunks = 0  # chunks cut from the current answer's text
        self.upstream_finished = False
        self.speaking_until = 0.0  # when the audio sent so far will have played out (monotonic)
        self.runway_chunks = 0  # chunks cut at a word because the speaker was about to run dry
        self.nice = renice_process(params.nice)
        if params.engine == "espeak":
            if not shutil.which("espeak-ng"):
                raise UnitError(Code.MODEL_LOADING, detail="espeak-ng is not installed (apt-get install espeak-ng)")
            self.voice = None
        else:
            if self.model_path is None:
                raise UnitError(Code.MODEL_LOADING, detail="Piper voice not found")
            from piper import SynthesisConfig

            self.voice = _load_piper(str(self.model_path), params.cpu_threads)
            self.syn = SynthesisConfig(length_scale=1.0 / params.speed)
            list(self.voice.synthesize("Ready.", self.syn))  # warm the ONNX session: first audio is sooner

    # --- synthesis ------------------------------------------------------------------------
    def synth(self, text: str) -> bytes:
        if self.voice is None:
            wav = subprocess.run(
                ["espeak-ng", "--stdout", "-v", self.p.voice, "-s", str(int(175 * self.p.speed)), text],
                capture_output=True,
                timeout=30,
                check=True,
            ).stdout
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
        now = time.monotonic()
        self.speaking_until = max(now, self.speaking_until) + len(audio) / 2 / self.p.audio_rate
        chunk = {
            "text": clause[:80],
            "words": len(clause.split()),
            "upstream_finished": self.upstream_finished,
            "at": now,
        }
        self.chunks = [*self.chunks[-19:], chunk]
        self.context.mark("chunk")
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

    def _first_words(self) -> str | None:
        """The opening words of an answer, once `first_chunk_words` of them are complete (not
        ending on a word that needs the next one), unless a clause ends first."""
        n = self.p.first_chunk_words
        if not n or self.answer_chunks or CLAUSE_END.search(self.pending):
            return None
        words = WORD_END.findall(self.pending)
        return self._take_words(words, range(n, min(len(words), FIRST_CHUNK_MAX_WORDS) + 1))

    def _clauses(self, final: bool) -> list[str]:
        """Complete clauses from the pending text (all of it when final)."""
        first = self._first_words()
        out: list[str] = [first] if first else []
        start = 0
        for m in CLAUSE_END.finditer(self.pending):
            # the first clause of an answer goes at once, however short: it is what is waited for
            if m.end() - start >= self.p.min_clause_chars or (not self.answer_chunks and not out):
                out.append(self.pending[start : m.end()].strip())
                start = m.end()
        self.pending = self.pending[start:]
        if not out and not final and self._running_dry():
            words = self._complete_words()
            if words:
                out.append(words)
                self.runway_chunks += 1
        if final and self.pending.strip():
            rest = self.pending.strip()
            out.append(rest if rest[-1] in ".!?。！？" else rest + ".")
            self.pending = ""
        out = [c for c in out if c]
        self.answer_chunks += len(out)
        return out

    def _running_dry(self) -> bool:
        """The speaker will have played everything sent within `min_runway`, mid-answer."""
        runway = self.p.min_runway
        return bool(runway and self.answer_chunks) and self.speaking_until - time.monotonic() < runway

    def _complete_words(self) -> str | None:
        """Take the complete words pending, up to the last one that does not need the next one."""
        words = WORD_END.findall(self.pending)
        return self._take_words(words, range(len(words), 0, -1))

    def _take_words(self, words: list[str], counts: range) -> str | None:
        """Cut the first k of the pending `words` off as a chunk, for the first k of `counts`
        whose last word may end a chunk (not "of", "the", ...)."""
        for k in counts:
            if not needs_continuation(words[k - 1]):
                cut = sum(len(w) for w in words[:k])
                chunk, self.pending = self.pending[:cut].strip(), self.pending[cut:]
                return chunk
        return None

    # --- inputs ---------------------------------------------------------------------------
    def infer(self, text: str) -> Iterator[Any]:
        self._answer_starts()
        self.upstream_finished = True  # the whole text is here
        self.pending += text
        for clause in self._clauses(final=True):
            yield from self._say(clause)
        yield from self._end()

    def on_frame(self, frame) -> Iterator[Any] | None:
        data = frame.data
        if isinstance(data, dict) and "delta" in data:  # an LLM streaming its answer
            if data.get("index") == 0:
                self._answer_starts()
            self.upstream_finished = bool(data.get("finish"))
            if isinstance(data.get("delta"), str):
                self.pending += data["delta"]
            return self._speak_ready(final=bool(data.get("finish")))
        if isinstance(data, str) and data:
            self._answer_starts()
            self.upstream_finished = True
            self.pending += data
            return self._speak_ready(final=True)
        return None

    def _answer_starts(self) -> None:
        self.answer_chunks = 0

    def _speak_ready(self, final: bool) -> Iterator[Any]:
        for clause in self._clauses(final):
            yield from self._say(clause)
        if final:
            yield from self._end()
            self.answer_chunks = 0

    def on_wake(self, frame=None) -> None:
        """Barge-in: forget unspoken text and tell the audio unit to stop at once."""
        self.pending = ""
        self.collected = []
        self.speaking_until = 0.0  # the audio unit drops what it had queued
        if self.p.response_format.startswith("sys"):
            self.context.emit("sys.pcm.stop", None, system=True)
        return None

    def info(self) -> dict[str, Any]:
        threads = self.voice.session.get_session_options().intra_op_num_threads if self.voice is not None else 0
        return {
            "engine": self.p.engine,
            "clauses_spoken": self.spoken_clauses,
            "pending_chars": len(self.pending),
            "chunks": self.chunks,
            "runway_chunks": self.runway_chunks,
            "cpu_threads": threads,
            "nice": self.nice,
        }


def _load_piper(model_path: str, threads: int) -> Any:
    """PiperVoice.load, with session options of our own: onnxruntime's defaults take every core
    and keep idle workers spinning, which starves llama.cpp writing the rest of the answer."""
    import json
    from pathlib import Path

    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    from emberflow.voice.cpu import onnx_options

    config = PiperConfig.from_dict(json.loads(Path(f"{model_path}.json").read_text(encoding="utf-8")))
    session = onnxruntime.InferenceSession(
        model_path, sess_options=onnx_options(threads), providers=["CPUExecutionProvider"]
    )
    return PiperVoice(config=config, session=session)


class MeloTTSUnit(TTSUnit):
    """StackFlow's `melotts` unit name, served by the same synthesiser."""

    kind = "melotts"
