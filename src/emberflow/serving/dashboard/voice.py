"""Push-to-talk and what the dashboard hears of voice turns.

The browser records the microphone and posts 16 kHz S16LE PCM here while the button is held;
it is pushed into the audio task (`sys.pcm`, the same path as a device microphone), so the
turn runs through the real chain: audio -> asr -> llm -> tts. The dashboard owns those tasks,
so their outputs come back to its connection: the transcript, the answer as it streams, and
the answer's PCM (the TTS plays on the audio unit with `enoutput`, so the audio unit still closes
the turn's latency breakdown, and the page gets the same sound to play).

The transcripts of flows the dashboard started arrive the same way (`Exchanges.on_output`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emberflow.gateways.local import LocalConnection
from emberflow.sys.tasks import TaskTable
from emberflow.voice import pcm

log = logging.getLogger("emberflow.dashboard")

Publish = Callable[[str, dict[str, Any]], None]
AUDIO = "audio"
# Silence pushed after the button is released, so the recogniser hears the end of the question
# (its min_silence plus a margin): the person should not have to wait in silence holding it.
TAIL_SECONDS = 1.0
# The chain push-to-talk sets up. No wake word: the button is the wake. 0.4 s of silence ends a
# question, as in the shipped voice-assistant flow.
ASR = {
    "model": "whisper-tiny.en",
    "response_format": "asr.utf-8.stream",
    "min_silence": 0.4,
    "partial_interval": 0,
    "enoutput": True,
}
LLM = {"model": "smollm2-135m-instruct", "response_format": "llm.utf-8.stream", "max_token_len": 64, "enoutput": True}
TTS = {"model": "piper-en-us-joe-medium", "response_format": "sys.pcm", "enoutput": True}
KEEP = 20  # exchanges remembered


@dataclass
class Exchange:
    heard: str = ""
    answer: str = ""
    started: float = field(default_factory=time.time)
    done: bool = False
    turn: dict[str, float] | None = None  # the audio unit's latency breakdown, once it is known

    def public(self) -> dict[str, Any]:
        return {"heard": self.heard, "answer": self.answer, "at": self.started, "done": self.done, "turn": self.turn}


class Exchanges:
    """Transcripts and answers of the voice tasks the dashboard owns, paired with the audio unit's
    latency breakdowns: a new breakdown belongs to the latest exchange that has none yet."""

    def __init__(self, publish: Publish):
        self.publish = publish
        self.items: deque[Exchange] = deque(maxlen=KEEP)
        self.speaking: set[str] = set()  # TTS work ids whose sound the page should play
        self._last_turn: dict[str, float] | None = None

    def on_output(self, msg: dict[str, Any]) -> None:
        work_id, data, obj = msg.get("work_id", ""), msg.get("data"), msg.get("object", "")
        kind = work_id.split(".", 1)[0]
        if msg.get("error", {}).get("code"):
            self.publish(
                "voice",
                {
                    "type": "error",
                    "work_id": work_id,
                    "message": msg["error"].get("message", ""),
                    "detail": data.get("detail") if isinstance(data, dict) else None,
                },
            )
        elif kind in ("asr", "whisper"):
            text = data.get("delta") if isinstance(data, dict) else data
            if isinstance(text, str) and (not isinstance(data, dict) or data.get("finish")):
                self.items.append(Exchange(heard=text))
                self.publish("voice", {"type": "heard", "text": text})
        elif kind in ("llm", "vlm"):
            self._answer(data)
        elif work_id in self.speaking and obj.startswith("sys.pcm") and isinstance(data, (bytes, bytearray)):
            self.publish("voice", {"type": "audio", "rate": pcm.RATE, "pcm": base64.b64encode(data).decode()})

    def _answer(self, data: Any) -> None:
        if not self.items or self.items[-1].done:
            self.items.append(Exchange())  # an answer to typed text, or a transcript we missed
        current = self.items[-1]
        delta, finish = (data.get("delta", ""), bool(data.get("finish"))) if isinstance(data, dict) else (data, True)
        if isinstance(delta, str) and delta:
            current.answer += delta
            self.publish("voice", {"type": "answer", "delta": delta})
        if finish:
            current.done = True
            self.publish("voice", {"type": "answered", "exchange": current.public()})

    def on_turns(self, turns: list[dict[str, float]]) -> None:
        """The audio unit's recent turns (its taskinfo): pair the new ones with exchanges."""
        start = 0
        if self._last_turn is not None:
            matches = [i for i, t in enumerate(turns) if t == self._last_turn]
            start = matches[-1] + 1 if matches else 0
        new = turns[start:]
        if not new:
            return
        self._last_turn = turns[-1]
        waiting = [e for e in self.items if e.turn is None and e.heard]
        for turn, exchange in zip(reversed(new), reversed(waiting), strict=False):
            exchange.turn = turn

    def public(self) -> list[dict[str, Any]]:
        return [e.public() for e in self.items]


class PushToTalk:
    """One push-to-talk chain, set up on the person's request and kept until stopped."""

    def __init__(self, conn: LocalConnection, table: TaskTable, exchanges: Exchanges, publish: Publish):
        self.conn, self.table, self.exchanges, self.publish = conn, table, exchanges, publish
        self.work_ids: dict[str, str] = {}
        self.state = "off"  # off | starting | ready | failed
        self.detail = ""
        self.pushed_seconds = 0.0
        self._lock = asyncio.Lock()  # chunks reach the audio task in the order they were recorded
        self._drains: set[asyncio.Task[None]] = set()

    def public(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "detail": self.detail,
            "work_ids": self.work_ids,
            "pushed_seconds": round(self.pushed_seconds, 3),
        }

    async def start(self) -> dict[str, Any]:
        if self.state in ("starting", "ready") and self._alive():
            return self.public()
        self.state, self.detail, self.work_ids = "starting", "", {}
        self.publish("voice", {"type": "ptt", **self.public()})
        try:
            asr = await self._setup("asr", {**ASR, "input": ["sys.pcm"], "input_policy": {"sys.pcm": "lossless"}})
            llm = await self._setup("llm", {**LLM, "input": [asr]})
            tts = await self._setup("tts", {**TTS, "input": [llm]})
        except RuntimeError as e:
            self.state, self.detail = "failed", str(e)
            await self.stop(keep_state=True)
        else:
            self.exchanges.speaking.add(tts)
            self.state = "ready"
        self.publish("voice", {"type": "ptt", **self.public()})
        return self.public()

    async def _setup(self, kind: str, params: dict[str, Any]) -> str:
        answer = await self.conn.request(kind, "setup", f"{kind}.setup", params, timeout=180)
        if answer["error"]["code"] != 0:
            detail = answer.get("data", {}).get("detail") if isinstance(answer.get("data"), dict) else None
            raise RuntimeError(f"{kind} setup failed: {answer['error']['message']} {detail or ''}".strip())
        self.work_ids[kind] = answer["work_id"]
        return str(answer["work_id"])

    def _alive(self) -> bool:
        return all(w in self.table for w in self.work_ids.values())

    async def push(self, chunk: bytes) -> float:
        """One piece of the recording (16 kHz S16LE mono); returns the seconds pushed so far."""
        if self.state != "ready" or not self._alive():
            raise RuntimeError("push-to-talk is not set up (or one of its tasks is gone): start it again")
        if len(chunk) % 2:
            chunk = chunk[:-1]
        if chunk:
            async with self._lock:
                await self._push(chunk)
        return self.pushed_seconds

    async def release(self) -> float:
        """The button is up: the silence that lets the recogniser end the utterance."""
        async with self._lock:
            await self._push(bytes(int(TAIL_SECONDS * pcm.RATE) * 2))
        seconds, self.pushed_seconds = self.pushed_seconds, 0.0
        return seconds

    async def _push(self, chunk: bytes) -> None:
        rid = await self.conn.infer(AUDIO, "None", "audio.pcm.raw", payload=chunk)
        self.pushed_seconds += len(chunk) / 2 / pcm.RATE
        drain = asyncio.get_running_loop().create_task(self._drain(rid))  # its answer is only "done"
        self._drains.add(drain)
        drain.add_done_callback(self._drains.discard)

    async def _drain(self, rid: str) -> None:
        try:
            async for msg in self.conn.outputs(AUDIO, rid, timeout=30):
                if msg.get("error", {}).get("code"):
                    self.publish("voice", {"type": "error", "work_id": AUDIO, "message": msg["error"]["message"]})
        except TimeoutError:
            self.conn.cancel(AUDIO, rid)

    async def stop(self, keep_state: bool = False) -> None:
        for work_id in reversed(list(self.work_ids.values())):
            if work_id in self.table:
                await self.conn.request(work_id, "exit", timeout=30)
            self.exchanges.speaking.discard(work_id)
        self.work_ids = {}
        if not keep_state:
            self.state, self.detail = "off", ""
        self.publish("voice", {"type": "ptt", **self.public()})
