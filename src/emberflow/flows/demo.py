"""`emberflow demo voice`: the shipped voice-assistant flow on a recording (or the microphone),
printing the transcript, the answer and the latency breakdown, and writing the spoken answer."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import numpy as np

from emberflow.voice import pcm

STAGES = [
    ("end_of_speech_wait", "end-of-speech wait"),
    ("asr", "speech recognition"),
    ("llm_first_token", "LLM first token"),
    ("llm_first_clause", "LLM first clause"),
    ("tts_first_audio", "TTS first audio"),
    ("framework_overhead", "framework overhead"),
    ("end_to_end", "end of speech -> first answer audio"),
]


def push_pcm(client, audio: np.ndarray, speed: float = 1.0, work_id: str = "audio", chunk_frames: int = 1) -> None:
    """Be the microphone: send PCM to the audio unit at `speed` x real time, `chunk_frames` bus
    frames (32 ms each) per message; one frame per message stamps capture times like a real mic."""
    frames = pcm.frames(audio)
    start = time.monotonic()
    sent = 0.0
    for i in range(0, len(frames), chunk_frames):
        chunk = b"".join(frames[i : i + chunk_frames])
        client.send(
            {
                "request_id": "mic",
                "work_id": work_id,
                "action": "inference",
                "object": "audio.pcm.base64",
                "data": base64.b64encode(chunk).decode(),
            }
        )
        sent += len(chunk) / 2 / pcm.RATE
        delay = start + sent / speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def audio_info(client) -> dict[str, Any]:
    return client.request("audio", "taskinfo")["data"]["unit"]


def wait_played(
    client, timeout: float = 120, since: dict[str, Any] | None = None, quiet: float = 1.0
) -> dict[str, Any]:
    """Until the speaker has played a new answer and stayed silent for `quiet` seconds (an answer
    is spoken in chunks, and a slow machine may pause between two); returns the audio unit's
    info. `since` is an earlier audio_info(): only what was played after it counts."""
    played_before = since["played_seconds"] if since else 0.0
    turns_before = len(since["turns"]) if since else 0
    deadline = time.monotonic() + timeout
    info: dict[str, Any] = {}
    silent_since: tuple[float, float] | None = None  # (time, played_seconds) when it went quiet
    while time.monotonic() < deadline:
        info = audio_info(client)
        answered = info["played_seconds"] > played_before + 0.3 and len(info["turns"]) > turns_before
        if not answered or info["playing"]:
            silent_since = None
        elif silent_since is None or silent_since[1] != info["played_seconds"]:
            silent_since = (time.monotonic(), info["played_seconds"])
        elif time.monotonic() - silent_since[0] >= quiet:
            return info
        time.sleep(0.1)
    raise TimeoutError(f"no answer was played: {info}")


def run_voice_demo(
    input: Path | None,
    output: Path | None,
    flow_name: str = "voice-assistant",
    speed: float = 1.0,
    timeout: float = 180,
) -> int:
    from rich.console import Console
    from rich.table import Table

    from emberflow.flows import runner
    from emberflow.flows.spec import load
    from emberflow.sys.launch import Launched
    from emberflow.voice.devices import microphone_available

    console = Console()
    if input is None and not microphone_available():
        console.print(
            "[red]No microphone found on this machine.[/] Pass a recording instead:\n"
            "  emberflow demo voice --input question.wav [--output answer.wav]"
        )
        return 2
    if input is not None and not input.is_file():
        console.print(f"[red]{input}: no such file[/]")
        return 2
    audio_params = {"source": "push" if input else "mic", "sink": f"file:{output.resolve()}" if output else "auto"}
    flow = load(flow_name)
    with console.status("starting emberflow and loading the models ..."):
        # the answer file is named by this client too (the flow's overrides): allow its directory
        media = [str(output.resolve().parent)] if output else []
        server = Launched({"port": 0, "http_port": None, "grpc_port": None, "audio": audio_params, "media_dirs": media})
    try:
        with server.client(timeout=300) as client:
            with console.status("loading the models ..."):
                work_ids = runner.start(client, flow, overrides={"audio": audio_params})
            if input is not None:
                question = pcm.decode(input.read_bytes())
                tail = np.zeros(int(1.5 * pcm.RATE), np.int16)  # so the end of speech is heard as such
                console.print(f"[dim]playing {input} ({len(question) / pcm.RATE:.1f} s) into the microphone ...[/]")
                push_pcm(client, np.concatenate([question, tail]), speed)
            else:
                console.print('[bold]Listening: say "Hey Jarvis", then your question.[/]')
            heard, answer = _conversation(client, work_ids, timeout)
            console.print(f"[bold green]heard:[/] {heard}")
            console.print(f"[bold blue]answer:[/] {answer}")
            info = wait_played(client, timeout)
            table = Table(title="latency of this turn")
            table.add_column("stage")
            table.add_column("ms", justify="right")
            turn = info["turns"][-1] if info["turns"] else {}
            for key, label in STAGES:
                if key in turn:
                    table.add_row(label, f"{turn[key] * 1000:.0f}")
            console.print(table)
            if output:
                console.print(f"spoken answer written to {output} ({info['played_seconds']:.1f} s)")
            runner.stop(client, work_ids)
        return 0
    except (TimeoutError, ConnectionError) as e:
        console.print(f"[red]{e}[/]")
        return 1
    finally:
        server.stop()


def _conversation(client, work_ids: dict[str, str], timeout: float) -> tuple[str, str]:
    heard, answer = "", []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = client.next_message(timeout=max(0.1, deadline - time.monotonic()))
        data = m.get("data")
        if m["error"]["code"]:
            raise TimeoutError(f"{m['work_id']}: {m['error']['message']} {data}")
        if m["work_id"] == work_ids.get("asr") and isinstance(data, dict) and data.get("finish"):
            heard = data["delta"]
        elif m["work_id"] == work_ids.get("llm") and isinstance(data, dict):
            answer.append(data.get("delta", ""))
            if data.get("finish"):
                return heard, "".join(answer)
    raise TimeoutError("no answer: was the wake word ('Hey Jarvis') at the start of the recording?")
