"""Voice units one by one: what must not trigger, barge-in, and bad input."""

from __future__ import annotations

import base64
import time

import numpy as np
import pytest
from speech import noise, silence, utterance
from voicekit import push

from emberflow.client import ServerError
from emberflow.voice import pcm
from support import eventually

pytestmark = pytest.mark.slow


def listen(client, seconds: float) -> list[dict]:
    out, deadline = [], time.monotonic() + seconds
    while True:
        try:
            out.append(client.next_message(timeout=max(0.05, deadline - time.monotonic())))
        except TimeoutError:
            return out


def test_no_wake_word_no_noise_no_transcript(voice_server):
    c = voice_server.client(timeout=120)
    kws = c.setup(
        "kws",
        {
            "model": "sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01",
            "response_format": "kws.bool",
            "enoutput": True,
            "kws": "HEY JARVIS",
            "input": ["sys.pcm"],
        },
    )
    asr = c.setup(
        "asr",
        {
            "model": "whisper-tiny.en",
            "response_format": "asr.utf-8.stream",
            "enoutput": True,
            "input": ["sys.pcm", kws],
        },
    )
    free = c.setup(
        "whisper",
        {
            "model": "whisper-tiny",
            "response_format": "asr.utf-8",
            "enoutput": True,
            "language": "en",
            "input": ["sys.pcm"],
        },
    )  # not gated: hears everything
    # speech without the wake word: the gated ASR stays silent; the free one transcribes it
    push(c, utterance(0.3, "Hey Travis, what is the weather like today?", 1.2))
    heard = c.next_message(lambda m: m["work_id"] == free, timeout=120)["data"]
    assert "weather" in heard.lower()
    got = listen(c, 2)
    assert not [m for m in got if m["work_id"] in (kws, asr)], got
    # silence and noise: nobody says anything
    push(c, np.concatenate([silence(2.0), noise(3.0, 0.02), silence(1.0), noise(2.0, 0.2, seed=1), silence(1.0)]))
    assert listen(c, 6) == []
    assert c.request(kws, "taskinfo")["data"]["unit"]["detections"] == []


def test_barge_in_stops_playback_at_the_wake(voice_server):
    c = voice_server.client(timeout=120)
    kws = c.setup("kws", {"model": "micro-wakeword", "kws": "hey_jarvis", "enoutput": True, "input": ["sys.pcm"]})
    tts = c.setup(
        "tts",
        {
            "model": "piper-en-us-joe-medium",
            "response_format": "sys.pcm",
            "enoutput": False,
            "input": ["tts.utf-8", kws],
        },
    )
    c.infer(
        tts,
        "This is a long announcement that keeps going for quite a while, so that there is plenty of "
        "time to interrupt it with the wake word before it ends.",
        object="tts.utf-8",
    )
    eventually(lambda: c.request("audio", "taskinfo")["data"]["unit"]["playing"])
    status = c.request("sys", "unit_call", "audio.audio_status")["data"]
    assert status == {"cap": "Running", "play": "Running"}
    push(c, utterance(0.2, "Hey Jarvis.", 0.5), speed=1.0)  # real time, like a person talking over it
    wake = c.next_message(lambda m: m["work_id"] == kws)
    assert wake["data"] is True
    time.sleep(0.5)
    audio = c.request("audio", "taskinfo")["data"]["unit"]
    detected = c.request(kws, "taskinfo")["data"]["unit"]["detected_at"][-1]
    assert not audio["playing"] and audio["stopped_at"], audio
    # stopped at once by the wake (a system frame that jumps the audio unit's queue; a TTS relays
    # it too), after the detection and not at the end of a TTS clause
    first = next(i for i, t in enumerate(audio["stopped_at"]) if t >= detected)
    assert audio["stopped_by"][first] == kws, audio
    assert audio["played_seconds"] < 8  # the announcement was cut short
    assert c.request(tts, "taskinfo")["data"]["unit"]["pending_chars"] == 0  # unspoken text dropped


def test_bad_audio_input(voice_server):
    c = voice_server.client(timeout=120)
    w = c.setup(
        "whisper",
        {
            "model": "whisper-tiny",
            "response_format": "asr.utf-8",
            "language": "en",
            "enoutput": True,
            "input": "whisper.wav.base64",
        },
    )
    speech = utterance(0.3, "The quick brown fox jumps over the lazy dog.", 0.5)

    def ask(data: str, obj: str = "whisper.wav.base64") -> dict:
        rid = c.infer(w, data, object=obj)
        return c.next_message(
            lambda m: m.get("request_id") == rid or (m["work_id"] == "whisper" and m["error"]["code"])
        )

    # another sample rate (44.1 kHz stereo) is resampled, not misread
    stereo44 = np.repeat(pcm.resample(speech, 16000, 44100)[:, None], 2, axis=1)
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(44100)
        f.writeframes(stereo44.astype("<i2").tobytes())
    assert "fox" in ask(base64.b64encode(buf.getvalue()).decode())["data"].lower()
    # a truncated WAV keeps what it has
    wav = pcm.to_wav(speech)
    assert "quick" in ask(base64.b64encode(wav[: len(wav) * 2 // 3]).decode())["data"].lower()
    # base64 garbage and a header with no audio: clear errors, the task keeps working
    assert ask("%%%not-base64%%%")["error"]["code"] == -23
    empty = ask(base64.b64encode(pcm.to_wav(b"")).decode())
    assert empty["error"]["code"] == -24 and "no audio" in empty["data"]["detail"]
    # ten minutes (25 MB of base64): the gateway refuses the frame, naming the limit
    rid = c.infer(w, base64.b64encode(pcm.to_wav(silence(600))).decode(), object="whisper.wav.base64")
    big = c.next_message(lambda m: m["work_id"] == "sys" and m["error"]["code"] == -2)
    assert "limit" in big["data"]["detail"]
    # six minutes fits in a frame; the unit refuses it, naming its limit, without decoding for minutes
    decoded = c.request(w, "taskinfo")["data"]["unit"]["decoded_seconds"]
    long = ask(base64.b64encode(pcm.to_wav(silence(360))).decode())
    assert long["error"]["code"] == -22 and "max_input_seconds" in long["data"]["detail"]
    assert c.request(w, "taskinfo")["data"]["unit"]["decoded_seconds"] == decoded  # refused before decoding
    del rid
    assert "dog" in ask(base64.b64encode(wav).decode())["data"].lower()
    with pytest.raises(ServerError):
        c.setup("whisper", {"model": "whisper-tiny", "beam_size": 99})


def test_wake_chime_plays_unless_disabled(voice_server):
    c = voice_server.client(timeout=120)
    kws = c.setup("kws", {"model": "micro-wakeword", "kws": "hey_jarvis", "input": ["sys.pcm"]})  # enwake_audio default
    before = c.request("audio", "taskinfo")["data"]["unit"]["played_seconds"]
    c.request(kws, "trigger")
    assert c.next_message(lambda m: m["work_id"] == kws)["object"] == "kws.bool"
    time.sleep(1.0)
    played = c.request("audio", "taskinfo")["data"]["unit"]["played_seconds"] - before
    assert 0.2 <= played <= 0.3  # one 0.25 s chime, played once
    # the chime never reaches the client, only the kws.bool does
    with pytest.raises(TimeoutError):
        c.next_message(lambda m: m["work_id"] == kws, timeout=0.5)
    c.exit(kws)
    quiet = c.setup("kws", {"model": "micro-wakeword", "enwake_audio": False, "input": ["sys.pcm"]})
    before = c.request("audio", "taskinfo")["data"]["unit"]["played_seconds"]
    c.request(quiet, "trigger")
    c.next_message(lambda m: m["work_id"] == quiet)
    time.sleep(0.6)
    assert c.request("audio", "taskinfo")["data"]["unit"]["played_seconds"] == before


def test_hot_word_resource_personalises_recognition(voice_server):
    """AIGES-style personalisation on a built-in unit: a contact's name the model cannot spell
    on its own is recognised once a hot-word resource names it."""
    c = voice_server.client(timeout=120)
    wav = base64.b64encode(pcm.to_wav(utterance(0.2, "Please call Kwabena Mensah tomorrow.", 0.3))).decode()

    def transcribe(params: dict) -> str:
        w = c.setup("whisper", {"model": "whisper-tiny.en", "response_format": "asr.utf-8", **params})
        rid = c.infer(w, wav, object="whisper.wav.base64")
        answer = c.next_message(lambda m: m.get("request_id") == rid or m["error"]["code"] != 0)
        c.exit(w)
        assert answer["error"]["code"] == 0, answer
        return answer["data"]

    assert "Kwabena" not in transcribe({})  # without the resource, the name comes out wrong
    c.request("whisper", "load_resource", "whisper.resource", {"id": "contacts", "data": "Kwabena Mensah\nAma Owusu"})
    assert "Kwabena Mensah" in transcribe({"hotwords": "contacts"})
    with pytest.raises(ServerError) as e:
        c.request("whisper", "load_resource", "whisper.resource", {"id": "huge", "data": "word " * 200})
    assert "limit" in e.value.msg["data"]["detail"]


def test_stackflow_streamed_wav_in_4096_char_base64_pieces(voice_server):
    """StackFlow's whisper example: `asr.wav.stream.base64`, the base64 text of a WAV cut every 4096
    characters (not on 4-character boundaries of the bytes it encodes, in general)."""
    c = voice_server.client(timeout=120)
    w = c.setup(
        "whisper",
        {
            "model": "whisper-tiny.en",
            "response_format": "asr.utf-8",
            "enoutput": True,
            "input": "whisper.wav.stream.base64",
        },
    )
    text = base64.b64encode(pcm.to_wav(utterance(0.2, "The quick brown fox jumps over the lazy dog.", 0.3))).decode()
    pieces = [text[i : i + 4095] for i in range(0, len(text), 4095)]  # 4095: cuts fall mid-quantum
    for index, piece in enumerate(pieces):
        c.send(
            {
                "request_id": "wav-stream",
                "work_id": w,
                "action": "inference",
                "object": "asr.wav.stream.base64",
                "data": {"delta": piece, "index": index, "finish": index == len(pieces) - 1},
            }
        )
    answer = c.next_message(lambda m: m.get("request_id") == "wav-stream" or m["error"]["code"] != 0)
    assert answer["error"]["code"] == 0, answer
    assert "quick brown fox" in answer["data"].lower()
