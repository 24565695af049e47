"""Streaming speech recognition over a WebSocket session: partial transcripts come back while the
audio is still being sent, then the final text. Real Whisper, real synthesised speech."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from serving.conftest import API_KEY
from voice.speech import utterance

pytestmark = pytest.mark.slow

CHUNK = 8000  # samples: 0.5 s of 16 kHz audio per frame


def test_asr_session_partials_while_streaming(http_server):
    import websockets

    audio = utterance(0.3, "What is the capital of France?", 0.5).tobytes()
    frames = [audio[i : i + CHUNK * 2] for i in range(0, len(audio), CHUNK * 2)]

    async def session() -> tuple[list[dict], int]:
        url = f"ws://127.0.0.1:{http_server.http_port}/units/asr/session"
        got: list[dict] = []
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {API_KEY}"}) as ws:
            for i, frame in enumerate(frames[:-1]):
                status = 0 if i == 0 else 1
                msg = {"status": status, "data": base64.b64encode(frame).decode()}
                if i == 0:
                    msg["params"] = {"partial_interval": 1.0}
                await ws.send(json.dumps(msg))
            # All but the last piece is sent: a partial transcript must already be on its way.
            got.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
            before_end = len(got)
            await ws.send(json.dumps({"status": 2, "data": base64.b64encode(frames[-1]).decode()}))
            while got[-1]["status"] != 2:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
        return got, before_end

    got, before_end = asyncio.run(session())
    assert all("error" not in f for f in got), got
    assert before_end == 1 and got[0]["status"] == 1 and got[0]["data"]  # a partial, before the end frame
    final = [f["data"] for f in got if f["status"] == 1][-1]
    assert "capital" in final.lower() and "france" in final.lower() and final.endswith((".", "?", "!"))
    assert got[-1]["status"] == 2


def test_asr_session_takes_a_wav_cut_anywhere(http_server):
    """StackFlow clients stream a WAV file as base64 pieces; the session does the same here."""
    import websockets

    from emberflow.voice import pcm

    wav = pcm.to_wav(utterance(0.3, "The quick brown fox jumps over the lazy dog.", 0.3))
    pieces = [wav[:30], wav[30:20000], wav[20000:]]  # the first piece is not even a whole header

    async def session() -> list[dict]:
        url = f"ws://127.0.0.1:{http_server.http_port}/units/asr/session"
        got: list[dict] = []
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {API_KEY}"}) as ws:
            for i, piece in enumerate(pieces):
                msg = {"status": (0, 1, 2)[i], "data": base64.b64encode(piece).decode()}
                if i == 0:
                    msg["params"] = {"response_format": "asr.utf-8"}  # whole format: one answer, no partials
                await ws.send(json.dumps(msg))
            while not got or got[-1]["status"] != 2:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
        return got

    got = asyncio.run(session())
    assert len(got) == 2 and "error" not in got[-1], got
    assert "quick brown fox" in got[0]["data"].lower()
