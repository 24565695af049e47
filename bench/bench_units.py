"""Two tiny units for bench/bus_hop.py, registered through the daemon config:

    units: {ticker: "bench_units:Ticker", sink: "bench_units:Sink"}   # bench/ on PYTHONPATH

`ticker` publishes paced stream chunks on its bus socket; `sink` (set up with `input: [ticker.N]`)
records, for every chunk, how long after the ticker's publish stamp its `on_frame` ran, and answers
the figures to its client when the ticker's stream finishes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from emberflow.unit import IO, Unit, UnitParams


def paced(count: int, rate: float) -> Iterator[int]:
    """0..count-1, each index released at its own deadline (rate per second), without drift."""
    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield i


class TickerParams(UnitParams):
    response_format: str = "ticker.utf-8.stream"  # stream: every piece is published as it is yielded


class Ticker(Unit):
    """Publishes `count` chunks of `size` characters at `rate` per second."""

    kind = "ticker"
    needs_model = False
    Params = TickerParams
    inputs = {"command": IO.JSON}  # {"count": 2000, "rate": 500, "size": 64}
    outputs = {"chunks": IO.TEXT_STREAM}

    def infer(self, command: dict[str, Any]) -> Iterator[str]:
        text = "x" * int(command.get("size", 64))
        for _ in paced(int(command["count"]), float(command["rate"])):
            yield text


class SinkParams(UnitParams):
    response_format: str = "sink.json"  # one whole message: the figures


class Sink(Unit):
    """Measures the hop from its upstream task's publish to its own on_frame."""

    kind = "sink"
    needs_model = False
    Params = SinkParams
    inputs = {"chunks": IO.TEXT_STREAM}
    outputs = {"figures": IO.JSON}

    def setup(self, params: UnitParams) -> None:
        self._reset()

    def _reset(self) -> None:
        self.index: list[int] = []
        self.hop_us: list[float] = []  # producer publish stamp -> on_frame here
        self.socket_us: list[float] = []  # producer publish stamp -> this host's recv stamp

    def on_frame(self, frame) -> dict[str, Any] | None:
        now = time.monotonic()
        data = frame.data
        if data.get("finish"):
            figures = {"index": self.index, "hop_us": self.hop_us, "socket_us": self.socket_us}
            self._reset()
            return figures
        stamps = dict(frame.hops)  # the ticker stamps its work_id when it publishes; our host adds "<wid>.recv"
        published = stamps[frame.source]
        self.index.append(data["index"])
        self.hop_us.append((now - published) * 1e6)
        self.socket_us.append((stamps[f"{self.context.work_id}.recv"] - published) * 1e6)
        return None
