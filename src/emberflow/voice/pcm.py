"""PCM helpers. The bus format is S16LE mono 16 kHz in 512-sample (32 ms) frames: the window
Silero VAD wants, and a multiple of microWakeWord's 10 ms feature step is not needed (it buffers)."""

from __future__ import annotations

import io
import wave
from typing import Any

import numpy as np

from emberflow.protocol.errors import Code, StackFlowError

RATE = 16000
FRAME = 512  # samples per bus frame (32 ms)
FRAME_BYTES = FRAME * 2


def decode(data: bytes, rate: int = RATE) -> np.ndarray:
    """Bytes from a client (a WAV file, or raw S16LE at `rate`) -> int16 mono at 16 kHz."""
    if data[:4] == b"RIFF":
        return decode_wav(data)
    if len(data) % 2:
        raise StackFlowError(Code.PARAMETER, detail="raw PCM must be 16-bit samples (even byte count)")
    pcm = np.frombuffer(data, dtype="<i2")
    return resample(pcm, rate, RATE)


def decode_wav(data: bytes) -> np.ndarray:
    try:
        with wave.open(io.BytesIO(data)) as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError) as e:
        raise StackFlowError(Code.PARAMETER, detail=f"not a readable WAV file: {e}") from None
    if width not in (1, 2, 4):
        raise StackFlowError(Code.PARAMETER, detail=f"unsupported WAV sample width {width} bytes")
    usable = len(raw) - len(raw) % (width * channels)  # a truncated file keeps its whole frames
    if usable <= 0:
        raise StackFlowError(Code.EMPTY_DATA, detail="the WAV file has no audio frames")
    dtype: Any = {1: np.uint8, 2: "<i2", 4: "<i4"}[width]
    pcm = np.frombuffer(raw[:usable], dtype=dtype).astype(np.float32)
    if width == 1:
        pcm = (pcm - 128.0) * 256.0
    elif width == 4:
        pcm /= 65536.0
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1)
    return resample(np.clip(pcm, -32768, 32767).astype(np.int16), rate, RATE)


def resample(pcm: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst:
        return pcm.astype(np.int16, copy=False)
    if not 4000 <= src <= 192000:
        raise StackFlowError(Code.PARAMETER, detail=f"unsupported sample rate {src} Hz")
    import soxr

    return soxr.resample(pcm.astype(np.int16, copy=False), src, dst).astype(np.int16)


def to_wav(pcm: np.ndarray | bytes, rate: int = RATE) -> bytes:
    raw = pcm.tobytes() if isinstance(pcm, np.ndarray) else pcm
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(raw)
    return buf.getvalue()


def frames(pcm: np.ndarray) -> list[bytes]:
    """Split into bus frames; the last one is zero-padded to a whole frame."""
    if len(pcm) % FRAME:
        pcm = np.concatenate([pcm, np.zeros(FRAME - len(pcm) % FRAME, np.int16)])
    return [pcm[i : i + FRAME].tobytes() for i in range(0, len(pcm), FRAME)]


def to_float(frame: bytes) -> np.ndarray:
    return np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0
