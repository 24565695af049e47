"""Two concurrent OpenAI chat clients: time to first token with 1 vs 2 LLM instances per model.

    .venv/bin/python bench/serving_llm_concurrency.py [--rounds 10] [--max-tokens 64] [--json]

Two `emberflow up` daemons run side by side, one with `instances: {llm: 1}` and one with
`instances: {llm: 2}`; only one of them is driven at a time, and rounds alternate between them
so background load hits both alike. A round starts two streamed `/v1/chat/completions` clients
(the official `openai` SDK) at the same instant, greedy, the same token budget. Time to first
token (TTFT) is from the call to the first content chunk. Each daemon first serves one
concurrent pair (model loads; with 2 instances, the second task is set up on that demand).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Daemon, finish_machine, machine, print_table

MODEL = "smollm2-135m-instruct"
TOPICS = ("a dragon who learns to fly over the sea", "a robot who learns to cook")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_chat(client, topic: str, max_tokens: int, start: threading.Barrier, out: dict) -> None:
    start.wait()
    began = time.perf_counter()
    tokens = 0
    for chunk in client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"Write a long story about {topic}."}],
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            tokens += 1
            out.setdefault("ttft", time.perf_counter() - began)
    out["total"] = time.perf_counter() - began
    out["tokens"] = tokens


def pair(client, max_tokens: int) -> list[dict]:
    start = threading.Barrier(2)
    outs: list[dict] = [{}, {}]
    threads = [threading.Thread(target=one_chat, args=(client, t, max_tokens, start, o)) for t, o in zip(TOPICS, outs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if not all("ttft" in o and "total" in o for o in outs):
        raise RuntimeError(f"a chat failed: {outs}")
    return outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    info = machine()
    from openai import OpenAI

    samples: dict[int, list[list[dict]]] = {1: [], 2: []}
    ports = {n: free_port() for n in samples}
    with (
        Daemon({"http_port": ports[1], "instances": {"llm": 1}}),
        Daemon({"http_port": ports[2], "instances": {"llm": 2}}),
    ):
        clients = {
            n: OpenAI(base_url=f"http://127.0.0.1:{p}/v1", api_key="none", max_retries=0, timeout=300)
            for n, p in ports.items()
        }
        for client in clients.values():
            pair(client, 8)  # load the unit and the model (and, with 2 instances, the second task)
        for _ in range(args.rounds):
            for n, client in clients.items():
                samples[n].append(pair(client, args.max_tokens))

    def row(n: int) -> dict:
        rounds = samples[n]
        flat = [o for r in rounds for o in r]
        return {
            "instances": n,
            "ttft_p50_ms": round(statistics.median(o["ttft"] for o in flat) * 1000, 1),
            "later_client_ttft_p50_ms": round(statistics.median(max(o["ttft"] for o in r) for r in rounds) * 1000, 1),
            "pair_done_p50_s": round(statistics.median(max(o["total"] for o in r) for r in rounds), 2),
            "tokens": sorted({o["tokens"] for o in flat}),
        }

    result = {
        "rows": [row(1), row(2)],
        "rounds": args.rounds,
        "max_tokens": args.max_tokens,
        "machine": finish_machine(info),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['machine']}\n")
    print_table(
        ["instances", "TTFT p50, both clients", "TTFT p50, later client", "both done p50", "tokens/answer"],
        [
            [
                r["instances"],
                f"{r['ttft_p50_ms']} ms",
                f"{r['later_client_ttft_p50_ms']} ms",
                f"{r['pair_done_p50_s']} s",
                ", ".join(map(str, r["tokens"])),
            ]
            for r in result["rows"]
        ],
    )


if __name__ == "__main__":
    main()
