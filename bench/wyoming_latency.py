"""The Wyoming server's latencies as Home Assistant meets them, against baselines in the same run.

    python bench/wyoming_latency.py [--rounds 10] [--json]

A real `emberflow up` with `wyoming_port`, driven by the `wyoming` package's AsyncTcpClient, one
connection per request as Home Assistant opens them:
- describe -> info (connect included), vs a reference server written with the wyoming package
  alone (`--reference-server`: AsyncServer answering the same info bytes) in another process;
- speech to text: audio-stop -> transcript on a 3 s utterance, vs the same asr unit in-process
  (`emberflow.testing.LocalTask`, the code the unit host runs) transcribing the same audio;
- text to speech: synthesize -> first audio-chunk (one-shot and streaming), vs the same tts unit
  in-process yielding its first clause's audio.
Server and in-process rounds alternate, so that load from other processes hits both.
The ratios are what the bridge, the router and the bus add to the model's own time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from harness import Daemon, finish_machine, machine, print_table, summary
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

SENTENCE = "Turn on the lights in the kitchen, please."
UTTERANCE = "What is the weather going to be like in Paris tomorrow?"  # about 3 s of speech


def ms(values: list[float]) -> dict[str, float]:
    return {k: round(v * 1000, 1) if k != "n" else v for k, v in summary(values).items()}


# --- the reference server: the wyoming package alone ------------------------------------------
def reference_server(port_file: str, info_json: str) -> None:
    from wyoming.server import AsyncEventHandler, AsyncTcpServer

    info = Event.from_dict(json.loads(info_json))

    class Handler(AsyncEventHandler):
        async def handle_event(self, event: Event) -> bool:
            if Describe.is_type(event.type):
                await self.write_event(info)
            return True

    async def serve() -> None:
        server = AsyncTcpServer("127.0.0.1", 0)
        await server.start(lambda r, w: Handler(r, w))
        with open(port_file, "w") as f:
            f.write(str(server._server.sockets[0].getsockname()[1]))  # the package does not say its port
        await asyncio.Event().wait()

    asyncio.run(serve())


# --- one request each, on its own connection --------------------------------------------------
async def describe(port: int) -> tuple[float, Event]:
    start = time.monotonic()
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Describe().event())
        info = await c.read_event()
    assert info is not None and info.type == "info"
    return time.monotonic() - start, info


async def synthesize(port: int, text: str) -> tuple[float, bytes]:
    start = time.monotonic()
    first, audio = 0.0, b""
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Synthesize(text=text).event())
        while (event := await c.read_event()) is not None and not AudioStop.is_type(event.type):
            if AudioChunk.is_type(event.type):
                first = first or time.monotonic() - start
                audio += AudioChunk.from_event(event).audio
    return first, audio


async def synthesize_streaming(port: int, text: str) -> float:
    words = text.split(" ")
    start = time.monotonic()
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(SynthesizeStart().event())
        for word in words:  # as an LLM streams its answer, word by word
            await c.write_event(SynthesizeChunk(text=word + " ").event())
        await c.write_event(Synthesize(text=text).event())
        await c.write_event(SynthesizeStop().event())
        first = 0.0
        while (event := await c.read_event()) is not None and event.type != "synthesize-stopped":
            if AudioChunk.is_type(event.type):
                first = first or time.monotonic() - start
    return first


async def transcribe(port: int, audio: bytes) -> tuple[float, str]:
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Transcribe(language="en").event())
        await c.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for i in range(0, len(audio), 2048):
            await c.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=audio[i : i + 2048]).event())
        stopped = time.monotonic()
        await c.write_event(AudioStop().event())
        while (event := await c.read_event()) is not None and not Transcript.is_type(event.type):
            pass
    assert event is not None
    return time.monotonic() - stopped, Transcript.from_event(event).text


# --- baselines: the same units in-process ------------------------------------------------------
class InProcess:
    """The asr and tts units in this process (the code the unit host runs), loaded once, so their
    rounds can alternate with the server's: load from other processes then hits both alike."""

    def __init__(self) -> None:
        from emberflow.testing import LocalTask
        from emberflow.units.asr import ASRUnit
        from emberflow.units.tts import TTSUnit

        self.asr = LocalTask(ASRUnit, {"model": "whisper-tiny.en", "response_format": "asr.utf-8"})
        self.tts = LocalTask(TTSUnit, {"model": "piper-en-us-joe-medium", "response_format": "tts.pcm.stream"})

    def transcribe(self, audio: bytes) -> float:
        start = time.monotonic()
        self.asr.infer(audio)
        return time.monotonic() - start

    def first_audio(self, text: str) -> float:
        start = time.monotonic()
        pieces = iter(self.tts.unit.infer(text))
        next(pieces)
        first = time.monotonic() - start
        for _ in pieces:
            pass
        return first

    def close(self) -> None:
        self.asr.close()
        self.tts.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--reference-server", nargs=2, metavar=("PORT_FILE", "INFO"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reference_server:
        reference_server(*args.reference_server)
        return
    info = machine()
    r: dict[str, list[float]] = {
        k: []
        for k in (
            "info",
            "info_reference",
            "stt",
            "asr_in_process",
            "tts_first",
            "tts_first_in_process",
            "tts_stream_first",
        )
    }
    with Daemon({"wyoming_port": 0}, start_timeout=120) as d:
        line = next(x for x in d.server.log if x.startswith("emberflow: wyoming on "))
        port = int(line.rsplit(":", 1)[1])
        _, info_event = asyncio.run(describe(port))
        _, audio = asyncio.run(synthesize(port, UTTERANCE))  # also waits out the warm-up of the models
        asyncio.run(transcribe(port, audio))
        import tempfile

        with tempfile.NamedTemporaryFile("r") as port_file:
            ref = subprocess.Popen(
                [sys.executable, __file__, "--reference-server", port_file.name, json.dumps(info_event.to_dict())]
            )
            try:
                while not (text := Path(port_file.name).read_text()):
                    time.sleep(0.05)
                ref_port = int(text)
                for _ in range(args.rounds * 5):  # cheap: more samples
                    r["info"].append(asyncio.run(describe(port))[0])
                    r["info_reference"].append(asyncio.run(describe(ref_port))[0])
            finally:
                ref.kill()
                ref.wait()
        heard = ""
        local = InProcess()
        local.transcribe(audio)  # warm-up
        try:
            for _ in range(args.rounds):
                seconds, heard = asyncio.run(transcribe(port, audio))
                r["stt"].append(seconds)
                r["asr_in_process"].append(local.transcribe(audio))
                r["tts_first"].append(asyncio.run(synthesize(port, SENTENCE))[0])
                r["tts_first_in_process"].append(local.first_audio(SENTENCE))
                r["tts_stream_first"].append(asyncio.run(synthesize_streaming(port, SENTENCE)))
        finally:
            local.close()
    conditions = finish_machine(info)
    figures = {k: ms(v) for k, v in r.items()}
    result = {
        "bench": "wyoming_latency",
        "machine": info,
        "utterance_s": round(len(audio) / 32000, 2),
        "heard": heard,
        "ms": figures,
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"## Wyoming server latencies\n\n{conditions}; utterance {result['utterance_s']} s, heard {heard!r}\n")

    def row(label: str, key: str, baseline: str, target: str) -> list[object]:
        a, b = figures[key], figures[baseline]
        return [label, a["p50"], a["p99"], b["p50"], round(a["p50"] / b["p50"], 2), target]

    print_table(
        ["", "emberflow p50 (ms)", "p99 (ms)", "baseline p50 (ms)", "ratio p50", "target"],
        [
            row("describe -> info (new connection)", "info", "info_reference", "< 50 ms"),
            row("STT audio-stop -> transcript", "stt", "asr_in_process", "<= 1000 ms"),
            row("TTS synthesize -> first audio", "tts_first", "tts_first_in_process", "<= 300 ms"),
            row("TTS streaming start -> first audio", "tts_stream_first", "tts_first_in_process", "<= 300 ms"),
        ],
    )
    print(
        "\nbaselines: describe against a server written with the wyoming package alone; STT and TTS against "
        "the same unit in-process (emberflow.testing.LocalTask)"
    )


if __name__ == "__main__":
    main()
