"""Voice test kit: a server whose speaker is a WAV file, a client-side microphone, checks."""

from __future__ import annotations

import base64
import json
import wave
from pathlib import Path

import pytest

from emberflow.flows.demo import push_pcm, wait_played  # noqa: F401  (voice tests use it from here)
from emberflow.voice import pcm
from support import EXAMPLES


def push(client, audio, speed: float = 4.0, work_id: str = "audio") -> None:
    push_pcm(client, audio, speed, work_id, chunk_frames=8)  # 256 ms messages: fewer, faster tests


def requests_of(name: str) -> list[dict]:
    path = EXAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_wav(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        return w.readframes(w.getnframes())


def transcribe(client, audio: bytes) -> str:
    """Transcribe with a whisper task over the protocol (the ASR unit checks the TTS output)."""
    w = client.setup(
        "whisper",
        {
            "model": "whisper-tiny",
            "response_format": "asr.utf-8",
            "language": "en",
            "enoutput": True,
            "input": "whisper.wav.base64",
        },
    )
    rid = client.infer(w, base64.b64encode(pcm.to_wav(audio)).decode(), object="whisper.wav.base64")
    (msg,) = list(client.outputs(w, rid, timeout=120))
    client.exit(w)
    return msg["data"]
