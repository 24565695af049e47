"""OpenAI SSE through emberflow vs llama-cpp-python called directly: decode tokens/s.

    .venv/bin/python bench/serving_llm_sse.py [--runs 5] [--max-tokens 128] [--json]

Both sides run SmolLM2-135M-Instruct (the packaged GGUF) with the same messages, greedy
decoding and the same token budget. Direct: `Llama.create_chat_completion(stream=True)` in this
process. emberflow: `/v1/chat/completions` with `stream=True` through the official `openai` SDK
against `emberflow up` (HTTP gateway -> router -> LLM unit process -> back as SSE). The rate is
(tokens - 1) / (last token time - first token time), so it measures decoding, not the prompt.
Runs alternate between the two so background load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Daemon, finish_machine, machine

MODEL = "smollm2-135m-instruct"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a long story about a dragon who learns to fly over the sea."},
]


def rate(stamps: list[float]) -> float:
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else float("nan")


def direct_run(llm, max_tokens: int) -> tuple[float, int]:
    stamps = []
    for chunk in llm.create_chat_completion(messages=MESSAGES, max_tokens=max_tokens, temperature=0.0, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            stamps.append(time.perf_counter())
    return rate(stamps), len(stamps)


def sse_run(client, max_tokens: int) -> tuple[float, int]:
    stamps = []
    tokens = 0
    for chunk in client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            stamps.append(time.perf_counter())
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return rate(stamps), tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    info = machine()
    from llama_cpp import Llama
    from openai import OpenAI

    from emberflow.models.catalogue import Catalogue

    cat = Catalogue()
    path = cat.weights_path(cat.resolve(MODEL).descriptor)
    llm = Llama(model_path=str(path), n_ctx=2048, n_threads=os.cpu_count(), verbose=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    direct, sse, counts = [], [], []
    with Daemon({"http_port": port}):
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=300)
        sse_run(client, 8)  # load the unit and the model
        direct_run(llm, 8)
        for _ in range(args.runs):
            r, n = direct_run(llm, args.max_tokens)
            direct.append(r)
            r, m = sse_run(client, args.max_tokens)
            sse.append(r)
            counts.append((n, m))
    result = {
        "direct_tok_s": round(statistics.median(direct), 1),
        "sse_tok_s": round(statistics.median(sse), 1),
        "ratio": round(statistics.median(sse) / statistics.median(direct), 3),
        "tokens": counts,
        "machine": finish_machine(info),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['machine']}\n")
    print(f"| path | decode tokens/s (median of {args.runs} runs) |")
    print("|---|---|")
    print(f"| llama-cpp-python direct (create_chat_completion, stream) | {result['direct_tok_s']} |")
    print(f"| emberflow OpenAI SSE (`/v1/chat/completions`, openai SDK) | {result['sse_tok_s']} |")
    print(f"| **ratio** | **{result['ratio']}** |")
    print(f"\ntokens per run (direct, SSE): {counts}")


if __name__ == "__main__":
    main()
