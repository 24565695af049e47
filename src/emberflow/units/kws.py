"""The wake-word unit: microWakeWord models (pymicro-wakeword; Apache-2.0 models).

Feeds on `sys.pcm` (or audio pushed through inference) and outputs `kws.bool` true on each
detection. Its frames are system frames downstream: they interrupt LLM/TTS (barge-in) and arm
wake-gated ASR/VAD tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from emberflow.unit import IO, Code, Unit, UnitError, UnitParams, action
from emberflow.voice import pcm

# StackFlow clients name keywords their own way ("HELLO" for sherpa); these are what we have.
KEYWORDS = {"hey_jarvis", "okay_nabu", "alexa", "hey_mycroft"}
DEFAULT_KEYWORD = "hey_jarvis"


def chime() -> bytes:
    """A short rising two-tone beep (0.25 s), so people hear that the device is listening."""
    import numpy as np

    tones = []
    for freq, seconds in ((880.0, 0.12), (1320.0, 0.13)):
        t = np.arange(int(pcm.RATE * seconds)) / pcm.RATE
        envelope = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)  # 10 ms fades: no clicks
        tones.append(0.25 * envelope * np.sin(2 * np.pi * freq * t))
    return (np.concatenate(tones) * 32767).astype("<i2").tobytes()


class KWSParams(UnitParams):
    response_format: str = "kws.bool"
    kws: str = Field(
        DEFAULT_KEYWORD,
        description="Wake word: hey_jarvis, okay_nabu, alexa or hey_mycroft. "
        "Other words (e.g. StackFlow's 'HELLO') fall back to hey_jarvis.",
    )
    probability_cutoff: float | None = Field(
        None, gt=0, lt=1, description="Detection threshold; model default if unset."
    )
    refractory: float = Field(1.5, ge=0, le=10, description="Seconds after a detection during which no new one fires.")
    enwake_audio: bool = Field(True, description="Play a short chime on the speaker at each wake.")

    @field_validator("kws", mode="before")
    @classmethod
    def _first(cls, v: Any) -> Any:
        return v[0] if isinstance(v, list) and v else v


class KWSUnit(Unit[KWSParams]):
    """Wake-word detection on the microphone stream."""

    kind = "kws"
    Params = KWSParams
    system_frames = True  # a wake interrupts linked LLM/TTS tasks and flushes their queues (barge-in)
    inputs = {"audio": IO.AUDIO_PCM}
    outputs = {"wake": IO.EVENT}
    model_path: Any = None

    def setup(self, params: KWSParams) -> None:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures

        self.p = params
        word = params.kws.strip().lower().replace(" ", "_")
        self.keyword = word if word in KEYWORDS else DEFAULT_KEYWORD
        self.fallback = word not in KEYWORDS
        config = Path(self.model_path) / f"{self.keyword}.json"
        if not config.is_file():
            raise UnitError(Code.MODEL_LOADING, detail=f"wake word model missing: {config}")
        self.model = MicroWakeWord.from_config(config)
        if params.probability_cutoff is not None:
            self.model.probability_cutoff = params.probability_cutoff
        self.features = MicroWakeWordFeatures()
        self.samples = 0
        self.quiet_until = 0  # sample index before which detections are ignored
        self.detections: list[float] = []  # seconds into the stream
        self.detected_at: list[float] = []  # monotonic times (comparable across processes)

    def _feed(self, audio: bytes) -> bool:
        detected = False
        for feats in self.features.process_streaming(audio):
            if self.model.process_streaming(feats) and self.samples >= self.quiet_until:
                detected = True
                self.quiet_until = self.samples + int(self.p.refractory * pcm.RATE)
                self.model.reset()
        self.samples += len(audio) // 2
        if detected:
            import time

            self.detections.append(round(self.samples / pcm.RATE, 3))
            self.detected_at.append(time.monotonic())
            self.context.mark("wake")
        return detected

    def _woke(self) -> None:
        """Report a wake, then (same channel, so after it) the chime: the wake flushes the
        speaker's queue, and the chime must not be flushed with it."""
        self.context.emit(self.p.response_format, True)
        if self.p.enwake_audio:
            self.context.emit("audio.chime", {"rate": pcm.RATE}, chime(), client=False)

    def on_frame(self, frame) -> None:
        if frame.payload and frame.object.startswith("sys.pcm") and self._feed(frame.payload):
            self._woke()
        return None

    def infer(self, data: Any) -> bool | None:
        """Audio pushed by a client (input `kws.*`): detections are reported like live ones."""
        if not isinstance(data, (bytes, bytearray)):
            raise UnitError(Code.PARAMETER, detail="kws inference takes audio (kws.wav.base64 / kws.pcm.base64)")
        audio = pcm.decode(bytes(data)).tobytes()
        if any(self._feed(audio[i : i + pcm.FRAME_BYTES]) for i in range(0, len(audio), pcm.FRAME_BYTES)):
            self._woke()
        return None

    @action("trigger")
    def trigger(self, data: Any) -> None:
        """StackFlow `kws.trigger`: a simulated wake-up, reported like a real one."""
        self.context.mark("wake")
        self._woke()

    def info(self) -> dict[str, Any]:
        return {
            "keyword": self.keyword,
            "fallback_from": self.p.kws if self.fallback else None,
            "detections": self.detections[-20:],
            "detected_at": self.detected_at[-20:],
            "heard_seconds": round(self.samples / pcm.RATE, 2),
        }

    def teardown(self) -> None:
        self.model.close()
