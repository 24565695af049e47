"""Bus frames: a small JSON header plus raw bytes, stamped with monotonic time at every hop.

On the wire a frame is a ZeroMQ multipart message `[topic, header, payload]`. The topic is
`<work_id>|` so a subscription to `llm.100|` can never match `llm.1000|` (ZMQ matches prefixes);
a system frame's is `<work_id>!`, so that a reader can take system frames on another socket than
data (the host's main thread reads them, to interrupt a busy task; its worker reads the data).
CLOCK_MONOTONIC is system-wide on Linux, so stamps from different unit processes compare directly.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any


def topic_of(work_id: str) -> bytes:
    return work_id.encode() + b"|"


def system_topic_of(work_id: str) -> bytes:
    return work_id.encode() + b"!"


@dataclass(slots=True)
class BusFrame:
    source: str  # work_id of the producing task
    object: str  # StackFlow type tag: "llm.utf-8.stream", "kws.bool", "sys.pcm", ...
    data: Any = None  # the JSON-able part (text, stream chunk, event value)
    payload: bytes = b""  # raw bytes (PCM, JPEG, tensors): never base64 on the bus
    system: bool = False  # system frames (wake, interrupt) jump every queue
    hops: list[tuple[str, float]] = field(default_factory=list)
    # Numbered 1, 2, ... by the publishing task: a reader counts the numbers it never saw (a link
    # across machines whose connection broke), so a frame lost on the way is never lost silently.
    seq: int = 0

    def stamp(self, where: str) -> BusFrame:
        self.hops.append((where, time.monotonic()))
        return self

    def to_parts(self) -> list[bytes]:
        header = {"src": self.source, "obj": self.object, "data": self.data, "hops": self.hops}
        if self.system:
            header["sys"] = 1
        if self.seq:
            header["seq"] = self.seq
        topic = system_topic_of(self.source) if self.system else topic_of(self.source)
        return [topic, json.dumps(header, separators=(",", ":")).encode(), self.payload]

    @classmethod
    def from_parts(cls, parts: list[bytes]) -> BusFrame:
        header = json.loads(parts[1])
        payload = parts[2] if len(parts) > 2 else b""
        hops = [tuple(h) for h in header.get("hops", ())]
        return cls(
            header["src"],
            header["obj"],
            header.get("data"),
            payload,
            bool(header.get("sys")),
            hops,
            int(header.get("seq", 0)),
        )

    def latency_breakdown(self) -> list[tuple[str, str, float]]:
        """(from, to, seconds) between consecutive hop stamps."""
        return [(a[0], b[0], b[1] - a[1]) for a, b in zip(self.hops, self.hops[1:])]
