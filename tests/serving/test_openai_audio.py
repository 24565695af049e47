"""/v1/audio/speech and /v1/audio/transcriptions on the voice units, with the official `openai`
SDK: speak a sentence with Piper, transcribe it back with Whisper."""

from __future__ import annotations

import io
import wave

import openai
import pytest

pytestmark = pytest.mark.slow


def test_speech_then_transcription_round_trip(openai_client):
    speech = openai_client.audio.speech.create(
        model="tts-1", voice="alloy", input="What is the capital of France?", response_format="wav"
    )
    audio = speech.read()
    with wave.open(io.BytesIO(audio)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert 0.8 < w.getnframes() / 16000 < 6
    text = openai_client.audio.transcriptions.create(model="whisper-1", file=("question.wav", audio))
    assert "capital" in text.text.lower() and "france" in text.text.lower()
    plain = openai_client.audio.transcriptions.create(model="whisper-1", file=("q.wav", audio), response_format="text")
    assert "france" in plain.lower()


def test_unsupported_formats_are_clear_400s(openai_client):
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.audio.speech.create(model="tts-1", voice="alloy", input="hi", response_format="mp3")
    assert "wav" in e.value.body["message"] and e.value.body["param"] == "response_format"
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.audio.transcriptions.create(model="whisper-1", file=("x.mp3", b"ID3\x03fake mp3"))
    assert "WAV" in e.value.body["message"]
