"""One bus hop unit→unit (ticker → sink, two unit processes) vs a raw pyzmq PUB/SUB pair.

    python bench/bus_hop.py [--rate 500] [--count 2000] [--rounds 3] [--size 64] [--json]

One-way latency = receiver's time.monotonic() - sender's stamp taken just before the send
(CLOCK_MONOTONIC is system-wide, so two processes compare directly).
- emberflow: the ticker's publish stamp (BusFrame hop) -> the sink's `on_frame` starting, i.e. ZMQ
  ipc + the unit host's poll loop + frame parsing + the task queue + the worker thread wake-up.
- baseline: the same frame bytes (BusFrame.to_parts), XPUB -> SUB over ipc between two processes,
  stamp -> right after recv_multipart. Same pacing code, same payload size.
Rounds alternate emberflow / baseline so that noise hits both; the first WARMUP messages of every
round are dropped (slow joiner, caches).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import zmq
from bench_units import paced
from harness import Daemon, finish_machine, machine, print_table, summary

from emberflow.bus.frame import BusFrame, topic_of
from emberflow.client import Client

WARMUP = 100
SOURCE = "ticker.1000"  # the baseline frames look like the ticker's
UNITS = {"ticker": "bench_units:Ticker", "sink": "bench_units:Sink"}


def frame_parts(index: int, text: str, finish: bool = False) -> list[bytes]:
    """The bytes the ticker task publishes for one chunk, stamped now."""
    t = time.monotonic()
    data = {"delta": "" if finish else text, "index": index, "finish": finish}
    return (
        BusFrame(SOURCE, "ticker.utf-8.stream", data, hops=[("tcp.recv", t), (f"{SOURCE}.start", t)])
        .stamp(SOURCE)
        .to_parts()
    )


# --- baseline ----------------------------------------------------------------------------------
def raw_subscriber(addr: str, timeout_s: float) -> None:
    """Child mode: receive until the finish frame; print the one-way latencies as JSON."""
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(addr)
    sub.setsockopt(zmq.SUBSCRIBE, topic_of(SOURCE))
    index, hop_us = [], []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and sub.poll(1000):
        parts = sub.recv_multipart()
        now = time.monotonic()
        header = json.loads(parts[1])
        if header["data"]["finish"]:
            break
        index.append(header["data"]["index"])
        hop_us.append((now - header["hops"][-1][1]) * 1e6)
    print(json.dumps({"index": index, "hop_us": hop_us}), flush=True)
    sub.close()
    ctx.term()


def raw_round(count: int, rate: float, size: int, rundir: str) -> dict:
    addr = f"ipc://{rundir}/raw.pub"
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)  # XPUB, as the task sockets: it also tells us when the subscriber is in
    pub.setsockopt(zmq.XPUB_NODROP, 1)
    pub.setsockopt(zmq.SNDHWM, 256)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(addr)
    child = subprocess.Popen(
        [sys.executable, __file__, "--raw-sub", addr, str(count / rate + 30)], stdout=subprocess.PIPE, text=True
    )
    try:
        if not pub.poll(30_000):
            raise TimeoutError("raw subscriber never subscribed")
        pub.recv()  # the subscription message
        text = "x" * size
        for i in paced(count, rate):
            pub.send_multipart(frame_parts(i, text))
        pub.send_multipart(frame_parts(count, text, finish=True))
        out, _ = child.communicate(timeout=60)
        return json.loads(out)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        pub.close()
        ctx.term()


# --- emberflow ---------------------------------------------------------------------------------
def emberflow_round(c: Client, ticker: str, sink: str, count: int, rate: float, size: int) -> dict:
    c.infer(ticker, {"count": count, "rate": rate, "size": size}, object="ticker.json")
    reply = next(c.outputs(sink, timeout=count / rate + 30))
    return reply["data"]


def measured(figures: dict, key: str) -> list[float]:
    return [v for i, v in zip(figures["index"], figures[key]) if i >= WARMUP]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=500.0, help="messages per second")
    ap.add_argument("--count", type=int, default=2000, help=f"messages per round (first {WARMUP} dropped)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=int, default=64, help="characters of text per chunk")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--raw-sub", nargs=2, metavar=("ADDR", "TIMEOUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.raw_sub:
        raw_subscriber(args.raw_sub[0], float(args.raw_sub[1]))
        return

    info = machine()
    count = args.count + WARMUP
    hop = {"emberflow": [], "raw pyzmq": []}
    socket_part, received = [], {"emberflow": 0, "raw pyzmq": 0}
    with (
        Daemon({"units": UNITS}) as d,
        Client("127.0.0.1", d.port, timeout=60) as c,
        tempfile.TemporaryDirectory(prefix="emberflow-issue2-bench-raw-") as rundir,
    ):
        ticker = c.setup("ticker", {"enoutput": False})  # the bus always gets outputs; the client needn't
        sink = c.setup("sink", {"input": [ticker]})
        for _ in range(args.rounds):
            ef = emberflow_round(c, ticker, sink, count, args.rate, args.size)
            raw = raw_round(count, args.rate, args.size, rundir)
            hop["emberflow"] += measured(ef, "hop_us")
            socket_part += measured(ef, "socket_us")
            hop["raw pyzmq"] += measured(raw, "hop_us")
            received["emberflow"] += len(ef["index"])
            received["raw pyzmq"] += len(raw["index"])
    frame_bytes = sum(len(p) for p in frame_parts(count, "x" * args.size))
    conditions = finish_machine(info)
    result = {
        "bench": "bus_hop",
        "machine": info,
        "rate": args.rate,
        "size": args.size,
        "frame_bytes": frame_bytes,
        "sent_per_mode": count * args.rounds,
        "received": received,
        "one_way_us": {k: summary(v) for k, v in hop.items()},
        "emberflow_publish_to_host_recv_us": summary(socket_part),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    ef, raw = result["one_way_us"]["emberflow"], result["one_way_us"]["raw pyzmq"]
    sock = result["emberflow_publish_to_host_recv_us"]
    print(
        f"## one bus hop, one-way latency (µs), {args.rate:.0f} msg/s, {frame_bytes}-byte frames, "
        f"{ef['n']} measured per mode"
    )
    print(conditions)
    print_table(
        ["path", "p50", "p99", "mean", "received/sent"],
        [
            [
                "emberflow ticker → sink on_frame",
                f"{ef['p50']:.0f}",
                f"{ef['p99']:.0f}",
                f"{ef['mean']:.0f}",
                f"{received['emberflow']}/{count * args.rounds}",
            ],
            [
                "  of which publish → sink host recv",
                f"{sock['p50']:.0f}",
                f"{sock['p99']:.0f}",
                f"{sock['mean']:.0f}",
                "",
            ],
            [
                "raw pyzmq XPUB → SUB",
                f"{raw['p50']:.0f}",
                f"{raw['p99']:.0f}",
                f"{raw['mean']:.0f}",
                f"{received['raw pyzmq']}/{count * args.rounds}",
            ],
            [
                "overhead (emberflow − raw)",
                f"{ef['p50'] - raw['p50']:+.0f}",
                f"{ef['p99'] - raw['p99']:+.0f}",
                f"{ef['mean'] - raw['mean']:+.0f}",
                "",
            ],
            [
                "ratio (emberflow / raw)",
                f"{ef['p50'] / raw['p50']:.2f}",
                f"{ef['p99'] / raw['p99']:.2f}",
                f"{ef['mean'] / raw['mean']:.2f}",
                "",
            ],
        ],
    )


if __name__ == "__main__":
    main()
