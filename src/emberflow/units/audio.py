"""The audio unit: the microphone (`sys.pcm`) and the speaker of the device.

Capture sources: a live microphone (sounddevice, when the machine has one), a WAV/raw file, or
PCM pushed by a client (`inference` with `audio.pcm.base64`, `audio.wav.base64` or a RAW frame).
Every source is published as 16 kHz mono S16LE frames of 32 ms on the bus, as `sys.pcm`.

Playback sinks: the speaker, a WAV file, or nothing; playback is paced in real time, so a
wake word can stop it mid-sentence (barge-in). Frames from linked tasks (TTS with
`response_format: sys.pcm`) are played; a system frame stops playback at once and drops the rest.
The first sample of each answer closes that turn's latency breakdown.

Each captured frame says whether an answer is playing and how loud the played samples were
around that moment (`playing`, `reference_rms`): the reference a barge-in detector needs to
tell the user's voice from the loudspeaker's echo (units/bargein.py).
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
import wave
from pathlib import Path
from typing import Any

from pydantic import Field

from emberflow.unit import IO, Code, Unit, UnitError, UnitParams, action
from emberflow.voice import pcm
from emberflow.voice.bargein import rms
from emberflow.voice.devices import microphone_available, speaker_available
from emberflow.voice.latency import turn_breakdown

log = logging.getLogger("emberflow.audio")
ECHO_WINDOW = 0.15  # s of played audio a captured frame may still hear (speaker -> room -> microphone)


class AudioParams(UnitParams):
    response_format: str = "sys.pcm"
    enoutput: bool = False
    source: str = Field("auto", description="'mic', 'push', 'file:<path>', or 'auto' (mic if present, else push)")
    sink: str = Field("auto", description="'speaker', 'none', 'file:<path.wav>', or 'auto' (speaker if present)")
    start_delay: float = Field(0.0, ge=0, le=60, description="Seconds before a file source starts.")
    realtime: bool = Field(True, description="Pace a file source in real time (False: as fast as consumers take it).")
    volume: float = Field(1.0, ge=0.0, le=4.0)


class AudioUnit(Unit[AudioParams]):
    """Microphone capture and speaker playback."""

    kind = "audio"
    needs_model = False
    singleton = True  # the machine's microphone and speaker: one task, work id `audio`, shared
    Params = AudioParams
    inputs = {"pcm": IO.AUDIO_PCM}
    outputs = {"pcm": IO.AUDIO_PCM}

    @classmethod
    def client_files(cls, data: dict[str, Any]) -> list[str]:
        """An audio file to play from (`source: file:<wav>`) or record the answers into (`sink`)."""
        named = (data.get("source"), data.get("sink"))
        return [v[5:] for v in named if isinstance(v, str) and v.startswith("file:")]

    def setup(self, params: AudioParams) -> None:
        self.p = params
        self.seq = 0
        self.turns: collections.deque = collections.deque(maxlen=20)  # recent latency breakdowns
        self._turn_key: float | None = None
        self._queue: collections.deque[tuple[bytes, list | None]] = collections.deque()
        self._cond = threading.Condition()
        self._running = True
        self.played_samples = 0
        self.stops: list[float] = []  # when playback was stopped by barge-in
        self.stopped_by: list[str | None] = []  # where the system frame that stopped it began (a wake)
        self.playing = False
        self.playback_started = 0.0  # when the current run of playback began (a new answer)
        self._last_stop_origin: Any = None  # first hop of the interruption last handled
        # Silences inside an answer: the next chunk of the same turn came after the last one had
        # played out (the TTS fell behind). Ran dry at, for which turn.
        self.answer_gaps_ms: collections.deque[float] = collections.deque(maxlen=50)
        self._dry: tuple[float, float] | None = None
        self._played_levels: collections.deque[tuple[float, float]] = collections.deque(maxlen=64)  # (t, rms)
        self._sink = self._open_sink(params.sink)
        self._player = threading.Thread(target=self._play_loop, name="audio-play", daemon=True)
        self._player.start()
        self._capture: threading.Thread | None = None
        self._mic: Any = None  # a sounddevice stream, when the source is the microphone
        self._start_source(params.source)

    # --- capture --------------------------------------------------------------------------
    def _start_source(self, source: str) -> None:
        if source == "auto":
            source = "mic" if microphone_available() else "push"
        self.source = source
        if source == "mic":
            self._start_mic()
        elif source.startswith("file:"):
            path = Path(source[5:]).expanduser()
            if not path.is_file():
                raise UnitError(Code.PARAMETER, detail=f"audio source file not found: {path}")
            audio = pcm.decode(path.read_bytes())
            self._capture = threading.Thread(target=self._file_loop, args=(audio,), name="audio-file", daemon=True)
            self._capture.start()
        elif source != "push":
            raise UnitError(Code.PARAMETER, detail=f"unknown audio source {source!r}")

    def _start_mic(self) -> None:
        import sounddevice as sd

        def callback(indata, frames, time_info, status):  # PortAudio thread: hand over, never block
            data = bytes(indata)
            self.context.post(lambda: self._publish(data))

        self._mic = sd.RawInputStream(
            samplerate=pcm.RATE, channels=1, dtype="int16", blocksize=pcm.FRAME, callback=callback
        )
        self._mic.start()

    def _file_loop(self, audio) -> None:
        time.sleep(self.p.start_delay)
        start = time.monotonic()
        for i, frame in enumerate(pcm.frames(audio)):
            if not self._running:
                return
            if self.p.realtime:
                delay = start + i * pcm.FRAME / pcm.RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.context.post(functools.partial(self._publish, frame))

    def _publish(self, frame: bytes) -> None:
        self.seq += 1
        self.context.hops = []  # each frame starts its own trail at capture time
        self.context.mark("capture")
        data: dict[str, Any] = {"seq": self.seq, "rate": pcm.RATE}
        reference = self._reference_rms()
        if reference is not None or self.playing or self._queue:
            # an answer is under way (between two clauses too): what the microphone may hear of it
            data.update(playing=True, reference_rms=reference or 0.0, playback_started=self.playback_started)
        self.context.emit("sys.pcm", data, frame)

    def _reference_rms(self) -> float | None:
        """The loudest played chunk this frame may hear, or None when nothing played lately."""
        since = time.monotonic() - pcm.FRAME / pcm.RATE - ECHO_WINDOW
        levels = [level for t, level in list(self._played_levels) if t >= since]
        return round(max(levels), 1) if levels else None

    def infer(self, data: Any) -> None:
        """PCM pushed by a client: a WAV file or raw S16LE 16 kHz, published like microphone audio."""
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise UnitError(Code.EMPTY_DATA, detail="send audio bytes (object audio.pcm.base64 or audio.wav.base64)")
        for frame in pcm.frames(pcm.decode(bytes(data))):
            self._publish(frame)
        return None

    # --- playback -------------------------------------------------------------------------
    def _open_sink(self, sink: str):
        if sink == "auto":
            sink = "speaker" if speaker_available() else "none"
        self.sink = sink
        if sink == "speaker":
            import sounddevice as sd

            stream = sd.RawOutputStream(samplerate=pcm.RATE, channels=1, dtype="int16")
            stream.start()
            return stream
        if sink.startswith("file:"):
            # open for as long as the task plays; closed in close()
            self._sink_file = open(Path(sink[5:]).expanduser(), "wb")  # noqa: SIM115
            w = wave.open(self._sink_file, "wb")  # noqa: SIM115
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(pcm.RATE)
            return w
        if sink != "none":
            raise UnitError(Code.PARAMETER, detail=f"unknown audio sink {sink!r}")
        return None

    def on_frame(self, frame) -> None:
        if frame.payload:
            self._enqueue(frame.payload, frame.hops)
        return None

    @action("play")
    def play(self, data: Any) -> None:
        """StackFlow `audio.play`: base64 WAV (or raw PCM) from the client, played on the sink."""
        import base64

        raw = base64.b64decode(data) if isinstance(data, str) else data
        self._enqueue(pcm.decode(raw).tobytes(), None)

    def _enqueue(self, data: bytes, hops: list | None) -> None:
        if self.p.volume != 1.0:
            import numpy as np

            data = (np.frombuffer(data, "<i2") * self.p.volume).clip(-32768, 32767).astype("<i2").tobytes()
        with self._cond:
            self._queue.append((data, hops))
            self._cond.notify()

    def on_wake(self, frame=None) -> None:
        """Barge-in: drop everything queued and stop the sound now.

        One interruption reaches us twice: from the wake word (or barge-in) task we follow, at
        once, and from the TTS's stop, once its current clause is synthesised. By then the wake
        chime may be playing, and the late stop must not cut it: a stop whose trail starts where
        the one already handled started is the same interruption."""
        origin = frame.hops[0] if frame is not None and frame.hops else None
        if origin is not None and origin == self._last_stop_origin:
            return None
        self._last_stop_origin = origin
        with self._cond:
            was_playing = self.playing or bool(self._queue)
            self._queue.clear()
            self.playing = False
        if was_playing:
            self.stops.append(time.monotonic())
            self.stopped_by.append(_interrupter(frame))
        return None

    def _play_loop(self) -> None:
        step = pcm.FRAME * 2  # write 32 ms at a time so a stop lands within one frame
        clock = None
        while True:
            with self._cond:
                while self._running and not self._queue:
                    self.playing = False
                    clock = None
                    self._cond.wait()
                if not self._running:
                    return
                data, hops = self._queue.popleft()
                if clock is None:  # was idle: a new answer starts
                    self.playback_started = time.monotonic()
                self.playing = True
            turn = _speech_end(hops)
            if self._dry is not None and turn is not None and self._dry[1] == turn:
                self.answer_gaps_ms.append(round((time.monotonic() - self._dry[0]) * 1000, 1))
            self._dry = None
            if hops:
                self._note_turn(hops)
            for i in range(0, len(data), step):
                with self._cond:
                    if not self.playing:
                        break  # barge-in
                chunk = data[i : i + step]
                now = time.monotonic()
                clock = now if clock is None or clock < now else clock
                self._write(chunk)
                self.played_samples += len(chunk) // 2
                self._played_levels.append((time.monotonic(), rms(chunk)))
                clock += len(chunk) / 2 / pcm.RATE
                delay = clock - time.monotonic()
                if delay > 0 and self.sink != "speaker":  # the speaker paces itself
                    time.sleep(delay)
            else:  # played out (not stopped): if nothing else is queued, the sink runs dry now
                with self._cond:
                    if not self._queue and turn is not None:
                        self._dry = (max(clock or 0.0, time.monotonic()), turn)

    def _write(self, chunk: bytes) -> None:
        sink = self._sink
        if sink is None:
            return
        if hasattr(sink, "writeframes"):
            sink.writeframes(chunk)  # wave patches the header as it goes
            self._sink_file.flush()  # so the file is a valid WAV while it grows
        else:
            sink.write(chunk)

    def _note_turn(self, hops: list) -> None:
        speech_end = _speech_end(hops)
        if speech_end is None or speech_end == self._turn_key:
            return
        self._turn_key = speech_end
        breakdown = turn_breakdown(hops, time.monotonic())
        if breakdown:
            self.turns.append(breakdown)
            log.info("turn latency (ms): %s", ", ".join(f"{k}={v * 1000:.0f}" for k, v in breakdown.items()))

    def info(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sink": self.sink,
            "captured_frames": self.seq,
            "played_seconds": round(self.played_samples / pcm.RATE, 3),
            "playing": self.playing,
            "barge_ins": len(self.stops),
            "stopped_at": self.stops[-20:],
            "stopped_by": self.stopped_by[-20:],
            "turns": list(self.turns),
            "answer_gaps_ms": list(self.answer_gaps_ms),
        }

    def teardown(self) -> None:
        self._running = False
        with self._cond:
            self._cond.notify_all()
        if self._mic is not None:
            self._mic.stop()
            self._mic.close()
        self._player.join(timeout=2)
        if self._sink is not None:
            self._sink.close()


def _speech_end(hops: list | None) -> float | None:
    """The turn a chunk answers: the ASR's `speech_end` stamp on its trail."""
    return next((t for w, t in hops if w.endswith(".speech_end")), None) if hops else None


# The marks a wake word or a barge-in detection leaves on the frame's hop trail (`context.mark`).
_INTERRUPTION_MARKS = (".wake", ".bargein")


def _interrupter(frame: Any) -> str | None:
    """The task whose detection began an interruption, also when a TTS relays its stop; else the sender."""
    if frame is None:
        return None
    for name, _ in frame.hops:
        for mark in _INTERRUPTION_MARKS:
            if name.endswith(mark):
                return str(name[: -len(mark)])
    return str(frame.source)
