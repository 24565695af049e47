"""Serving throughput and latency: emberflow vs LitServe vs Ray Serve on the same two ONNX models.

    .venv/bin/pip install -e '.[bench]'        # litserve, ray[serve]
    .venv/bin/python bench/serving_vs_litserve.py [--seconds 5] [--servers emberflow,litserve,ray]
        [--models digits,minilm] [--json]

Models: the digits CNN (tests/fixtures/toolchain, one 1x8x8 image per request) and MiniLM int8
(one sentence per request). Every server batches dynamically with max batch 32 and a 2 ms wait:
emberflow through its KServe v2 repository (CNN) and /v1/embeddings (MiniLM, embed unit),
LitServe and Ray Serve through their own batching with the same model code
(bench/serving_models.py). One closed-loop load generator (aiohttp, in this process) drives each
server on loopback at concurrency 1, 8 and 32; each point runs for --seconds after a warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Daemon, finish_machine, machine, summary
from serving_models import DIGITS, DIGITS_DATA

CONCURRENCY = (1, 8, 32)
MAX_BATCH, BATCH_WAIT_S = 32, 0.002
SENTENCES = [
    "A man is eating food.",
    "The new movie is awesome.",
    "A cheetah is running behind its prey.",
    "The cat sits outside.",
    "Ships sail across the ocean at night.",
    "Tomorrow it will rain in Paris.",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Target:
    """How to call one model on one server: URL and request body builder."""

    def __init__(self, url: str, body) -> None:
        self.url, self.body = url, body


def emberflow_targets(port: int) -> dict[str, Target]:
    base = f"http://127.0.0.1:{port}"
    return {
        "digits": Target(
            base + "/v2/models/digits/infer",
            lambda x, i: {
                "inputs": [
                    {
                        "name": "image",
                        "shape": [1, 1, 8, 8],
                        "datatype": "FP32",
                        "data": x[i % len(x)].reshape(-1).tolist(),
                    }
                ]
            },
        ),
        "minilm": Target(
            base + "/v1/embeddings", lambda x, i: {"model": "minilm-l6-v2-int8", "input": SENTENCES[i % len(SENTENCES)]}
        ),
    }


def peer_targets(port: int) -> dict[str, Target]:
    base = f"http://127.0.0.1:{port}"
    return {
        "digits": Target(base + "/digits", lambda x, i: {"image": x[i % len(x)].reshape(-1).tolist()}),
        "minilm": Target(base + "/minilm", lambda x, i: {"text": SENTENCES[i % len(SENTENCES)]}),
    }


async def load(target: Target, concurrency: int, seconds: float, images: np.ndarray) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    bodies = [json.dumps(target.body(images, i)).encode() for i in range(64)]
    conn = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=conn, headers={"Content-Type": "application/json"}) as session:

        async def one(i: int) -> None:
            nonlocal errors
            t0 = time.perf_counter()
            async with session.post(target.url, data=bodies[i % len(bodies)]) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
                    return
            latencies.append(time.perf_counter() - t0)

        async def worker(w: int, until: float, record: bool) -> None:
            i = w
            while time.perf_counter() < until:
                await one(i)
                i += concurrency

        await asyncio.gather(*(worker(w, time.perf_counter() + 1.0, False) for w in range(concurrency)))  # warm-up
        latencies.clear()
        errors = 0
        start = time.perf_counter()
        await asyncio.gather(*(worker(w, start + seconds, True) for w in range(concurrency)))
        elapsed = time.perf_counter() - start
    s = summary(latencies) if latencies else {"n": 0, "p50": float("nan"), "p99": float("nan")}
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(s["p50"] * 1000, 2),
        "p99_ms": round(s["p99"] * 1000, 2),
        "errors": errors,
        "n": len(latencies),
    }


def wait_http(url: str, body: dict, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(
                url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=30) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def run_points(
    name: str, targets: dict[str, Target], seconds: float, images: np.ndarray, models: list[str]
) -> list[dict]:
    rows = []
    for model, target in targets.items():
        if model not in models:
            continue
        wait_http(target.url, target.body(images, 0), 120)
        for c in CONCURRENCY:
            r = asyncio.run(load(target, c, seconds, images))
            rows.append({"server": name, "model": model, "concurrency": c, **r})
            print(
                f"  {name:9} {model:7} c={c:<3} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                f"p99 {r['p99_ms']:7.2f} ms  errors {r['errors']}",
                file=sys.stderr,
                flush=True,
            )
    return rows


def bench_emberflow(seconds: float, images: np.ndarray, models: list[str]) -> list[dict]:
    repo = Path(tempfile.mkdtemp(prefix="emberflow-serving-bench-"))
    (repo / "digits" / "1").mkdir(parents=True)
    (repo / "digits" / "1" / "model.onnx").write_bytes(DIGITS.read_bytes())
    (repo / "digits" / "config.yaml").write_text(
        f"max_batch_size: {MAX_BATCH}\nmax_queue_delay_ms: {BATCH_WAIT_S * 1000}\ninstances: 1\nmax_queue: 512\n"
    )
    port = free_port()
    with Daemon({"http_port": port, "model_repository": str(repo)}):
        return run_points("emberflow", emberflow_targets(port), seconds, images, models)


def bench_peer(kind: str, seconds: float, images: np.ndarray, models: list[str]) -> list[dict]:
    port = free_port()
    script = Path(__file__).resolve().parent / "serving_peer_apps.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), kind, str(port), str(MAX_BATCH), str(BATCH_WAIT_S)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        process_group=0,
    )
    try:
        return run_points(kind, peer_targets(port), seconds, images, models)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(15)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        if kind == "ray":
            subprocess.run(
                [sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--servers", default="emberflow,litserve,ray")
    ap.add_argument("--models", default="digits,minilm", help="comma-separated subset of digits,minilm")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    info = machine()
    images = np.load(DIGITS_DATA)["test_x"][:64]
    rows: list[dict] = []
    for name in args.servers.split(","):
        print(f"{name}:", file=sys.stderr, flush=True)
        try:
            models = args.models.split(",")
            rows += (
                bench_emberflow(args.seconds, images, models)
                if name == "emberflow"
                else bench_peer(name, args.seconds, images, models)
            )
        except Exception as e:  # a peer that cannot run here is reported, not fatal
            print(f"  {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
    note = finish_machine(info)
    if args.json:
        print(json.dumps({"machine": note, "rows": rows}, indent=1))
        return
    print(f"\n{note}\n")
    print("| model | concurrency | server | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["model"], r["concurrency"], r["server"])):
        print(
            f"| {r['model']} | {r['concurrency']} | {r['server']} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{r['errors']} |"
        )


if __name__ == "__main__":
    main()
