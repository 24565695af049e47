"""Home Assistant's own Wyoming integration classes against a Wyoming server, run inside the
Home Assistant venv (.venv-ha, scripts/ha-venv.sh), not the project's: HA 2024.3.3 pins
wyoming 1.5.3 and its own aiohttp.

    .venv-ha/bin/python tests/bridges/ha_driver.py HOST PORT

Prints one JSON object: what HA's `WyomingService.create` (its describe with a 1 s timeout and
retries) found, what its TTS entity synthesised, what its STT entity heard of that audio, and
what its wake word entity detected. The entities are HA's unchanged classes; only the config
entry they would read their id from is a plain object (no Home Assistant core runs here).
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import types
import wave

from homeassistant.components import stt
from homeassistant.components.wyoming.data import WyomingService
from homeassistant.components.wyoming.stt import WyomingSttProvider
from homeassistant.components.wyoming.tts import WyomingTtsProvider
from homeassistant.components.wyoming.wake_word import WyomingWakeWordProvider

QUESTION = "What is the capital of France?"
CHUNK = 2048  # HA's pipeline sends 1024-sample chunks


async def _chunks(pcm: bytes):
    for i in range(0, len(pcm), CHUNK):
        yield pcm[i : i + CHUNK]


async def _timed_chunks(pcm: bytes):
    """As a microphone delivers them, in real time: HA's wake entity stops listening (and says
    nothing was detected) when its stream ends, so an instant stream would end before the answer."""
    for i in range(0, len(pcm), CHUNK):
        yield pcm[i : i + CHUNK], i * 1000 // 32000
        await asyncio.sleep(CHUNK / 32000)


def _pcm(wav: bytes) -> tuple[bytes, tuple[int, int, int]]:
    with wave.open(io.BytesIO(wav)) as w:
        return w.readframes(w.getnframes()), (w.getframerate(), w.getsampwidth(), w.getnchannels())


async def main(host: str, port: int) -> dict:
    service = await WyomingService.create(host, port)
    if service is None:
        return {"service": None}
    entry = types.SimpleNamespace(entry_id="emberflow")
    out: dict = {
        "service": {
            "platforms": sorted(str(p) for p in service.platforms),
            "has_services": service.has_services(),
            "name": service.get_name(),
        }
    }

    speaker = WyomingTtsProvider(entry, service)
    language = speaker.default_language
    voice = speaker.async_get_supported_voices(language)[0].voice_id
    fmt, wav = await speaker.async_get_tts_audio(QUESTION, language, {"voice": voice})
    pcm, wav_format = _pcm(wav)
    out["tts"] = {
        "language": language,
        "voice": voice,
        "format": fmt,
        "wav_format": wav_format,
        "seconds": len(pcm) / 32000,
    }

    listener = WyomingSttProvider(entry, service)
    metadata = stt.SpeechMetadata(
        language="en",
        format=stt.AudioFormats.WAV,
        codec=stt.AudioCodecs.PCM,
        bit_rate=stt.AudioBitRates.BITRATE_16,
        sample_rate=stt.AudioSampleRates.SAMPLERATE_16000,
        channel=stt.AudioChannels.CHANNEL_MONO,
    )
    result = await listener.async_process_audio_stream(metadata, _chunks(pcm))
    out["stt"] = {
        "languages": sorted(listener.supported_languages)[:3],
        "text": result.text,
        "state": str(result.result),
    }

    waker = WyomingWakeWordProvider(None, entry, service)
    words = await waker.get_supported_wake_words()
    _, wake_wav = await speaker.async_get_tts_audio("Hey Jarvis.", language, {"voice": voice})
    wake_pcm = _pcm(wake_wav)[0] + bytes(32000)  # and a second of silence
    detected = await waker._async_process_audio_stream(_timed_chunks(wake_pcm), "hey_jarvis")
    out["wake"] = {
        "words": sorted(w.id for w in words),
        "detected": None
        if detected is None
        else {"id": detected.wake_word_id, "phrase": detected.wake_word_phrase, "timestamp": detected.timestamp},
    }
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2])))))
