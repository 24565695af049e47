"""Audio between Wyoming events and units: what a client streams becomes bytes a unit decodes
(raw 16 kHz S16LE mono as is, any other format as a WAV file the unit resamples), and what a
unit synthesises goes out as `audio-chunk` events of a fixed size."""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator

from wyoming.audio import AudioChunk, AudioFormat

RATE, WIDTH, CHANNELS = 16000, 2, 1  # what emberflow's voice units speak (emberflow.voice.pcm)
SAMPLES_PER_CHUNK = 1024  # as the reference Piper server sends them
UNIT_FORMAT = AudioFormat(rate=RATE, width=WIDTH, channels=CHANNELS)


def for_unit(audio: bytes, fmt: AudioFormat) -> bytes:
    """Bytes a voice unit takes: raw PCM when it is already 16 kHz mono 16-bit, else a WAV file."""
    if (fmt.rate, fmt.width, fmt.channels) == (RATE, WIDTH, CHANNELS):
        return audio
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(fmt.channels)
        w.setsampwidth(fmt.width)
        w.setframerate(fmt.rate)
        w.writeframes(audio[: len(audio) - len(audio) % (fmt.width * fmt.channels)])
    return out.getvalue()


def chunks(audio: bytes, timestamp_ms: int = 0) -> Iterator[AudioChunk]:
    """Unit PCM as audio-chunk events, each stamped with its offset in the stream (ms)."""
    step = SAMPLES_PER_CHUNK * WIDTH * CHANNELS
    for start in range(0, len(audio), step):
        yield AudioChunk(
            rate=RATE,
            width=WIDTH,
            channels=CHANNELS,
            audio=audio[start : start + step],
            timestamp=timestamp_ms + start * 1000 // (RATE * WIDTH * CHANNELS),
        )
