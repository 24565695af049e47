"""LLM decode tokens/s and time-to-first-token: StackFlow TCP vs direct in-process llama-cpp-python.

    python bench/llm_tcp_vs_direct.py [--rounds 4] [--max-tokens 64] [--threads 2] [--stream-interval-ms 25] [--json]

Same GGUF (SmolLM2-135M-Instruct), same chat template, same prompts, greedy decoding
(temperature 0), same max tokens and n_threads, all in one run. Three ways to ask:
- tcp:    `emberflow up` on loopback, llm unit process, `Client.stream` (llm.utf-8.stream), timed here;
- direct: `Llama.create_chat_completion(stream=True)`, timed in-process (the target's baseline),
          with llama.cpp's OpenMP defaults (`OMP_WAIT_POLICY` unset: threads spin between tokens);
- direct-passive: the same with `OMP_WAIT_POLICY=PASSIVE` (threads sleep at barriers and between
          tokens instead of spinning): what the thread policy alone does, beside the transport;
- unit:   the same LLMUnit code, timed in-process (LocalTask): isolates what the transport costs
          from what the unit's own decoding loop costs.
Each model lives in its own process (the two in-process ones in worker children that time
themselves), so no two llama.cpp contexts share a process.
Every (round, prompt) asks all three, in an order rotated each round, so noise hits all alike.
Tokens are counted by re-tokenizing each answer with the model (the same count for the same text,
whatever the chunking); greedy decoding makes the three answers identical, which is checked.
TTFT = call -> first non-empty text; decode tokens/s = (tokens - 1) / (last text - first text).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

from harness import Daemon, finish_machine, machine, print_table

from emberflow.client import Client
from emberflow.models.catalogue import Catalogue
from emberflow.unit.local import LocalTask
from emberflow.units.llm import DEFAULT_SYSTEM_PROMPT, LLMUnit

MODEL = "smollm2-135m-instruct"
PROMPTS = [
    "What is the capital of France?",
    "Name three primary colours.",
    "Why is the sky blue?",
    "How many legs does a spider have?",
    "What does a thermometer measure?",
]
MODES = ["tcp", "direct", "direct-passive", "unit"]


def sampling(args: argparse.Namespace) -> dict:
    """The LLM unit's setup params; the direct call gets the same values under its own names."""
    return {
        "model": MODEL,
        "response_format": "llm.utf-8.stream",
        "input": "llm.utf-8",
        "enoutput": True,
        "prompt": DEFAULT_SYSTEM_PROMPT,
        "prompt_suffix": "",  # the catalogue's style hint: not in the direct call
        "max_token_len": args.max_tokens,
        "temperature": 0.0,
        "top_p": 0.9,
        "top_k": 40,
        "repetition_penalty": 1.0,
        "n_ctx": 2048,
        "n_threads": args.threads,
        "seed": 0,
        "stream_interval_ms": args.stream_interval_ms,
    }


def timed(pieces: Iterator[str]) -> dict:
    """Consume a stream of text pieces, noting when the first and last non-empty ones arrived."""
    t0 = time.perf_counter()
    first = last = None
    text = []
    for piece in pieces:
        if piece:
            last = time.perf_counter()
            first = first or last
            text.append(piece)
    if first is None:
        raise RuntimeError("empty answer")
    return {"ttft_s": first - t0, "decode_s": last - first, "text": "".join(text)}


def direct_pieces(llm, p: dict, question: str) -> Iterator[str]:
    chunks = llm.create_chat_completion(
        messages=[{"role": "system", "content": p["prompt"]}, {"role": "user", "content": question}],
        stream=True,
        max_tokens=p["max_token_len"],
        temperature=p["temperature"],
        top_p=p["top_p"],
        top_k=p["top_k"],
        repeat_penalty=p["repetition_penalty"],
        seed=p["seed"],
    )
    for chunk in chunks:
        yield chunk["choices"][0]["delta"].get("content") or ""


def weights_path() -> str:
    cat = Catalogue()
    return str(cat.weights_path(cat.resolve(MODEL).descriptor))


def serve_in_process(mode: str, p: dict) -> None:
    """Child mode: hold one model in this process and answer questions read from stdin, timing each
    answer here, in-process. One model per process, like the llm unit process: two llama.cpp
    contexts in one process would share (and contend for) its CPU threads."""
    if mode.startswith("direct"):
        from llama_cpp import Llama

        llm = Llama(
            model_path=weights_path(), n_ctx=p["n_ctx"], n_threads=p["n_threads"], seed=p["seed"], verbose=False
        )
        ask = lambda q: direct_pieces(llm, p, q)
    else:
        local = LocalTask(LLMUnit, p)
        ask = local.unit.infer
    print("ready", flush=True)
    for line in sys.stdin:
        print(json.dumps(timed(ask(json.loads(line)))), flush=True)


class InProcess:
    """A `serve_in_process` child; `ask(question)` returns its in-process timings."""

    def __init__(self, mode: str, p: dict):
        env = dict(os.environ)
        if mode == "direct-passive":
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", mode, "--params", json.dumps(p)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"in-process {mode} worker failed to start")

    def ask(self, question: str) -> dict:
        self.proc.stdin.write(json.dumps(question) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="n_threads for every mode")
    ap.add_argument(
        "--stream-interval-ms",
        type=float,
        default=25.0,
        help="the llm unit's stream_interval_ms (0: one message per piece)",
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--serve", choices=["direct", "direct-passive", "unit"], help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_in_process(args.serve, json.loads(args.params))
        return
    from llama_cpp import Llama

    info = machine()
    p = sampling(args)
    vocab = Llama(model_path=weights_path(), vocab_only=True, verbose=False)  # to count tokens, nothing else
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    workers: list[InProcess] = []
    with Daemon() as d, Client("127.0.0.1", d.port, timeout=120) as c:
        try:
            wid = c.setup("llm", p)
            workers = [InProcess("direct", p), InProcess("direct-passive", p), InProcess("unit", p)]
            ask: dict[str, Callable[[str], dict]] = {
                "tcp": lambda q: timed(c.stream(wid, q)),
                "direct": workers[0].ask,
                "direct-passive": workers[1].ask,
                "unit": workers[2].ask,
            }
            for mode in MODES:  # warm-up: first-call allocations, page cache
                ask[mode](PROMPTS[0])
            for r in range(args.rounds):
                order = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
                for i, question in enumerate(PROMPTS):
                    for mode in order:
                        run = ask[mode](question)
                        run["tokens"] = len(vocab.tokenize(run["text"].encode(), add_bos=False, special=False))
                        runs[mode].append({"round": r, "prompt": i, **run})
        finally:
            for w in workers:
                w.close()

    conditions = finish_machine(info)
    result = {"bench": "llm_tcp_vs_direct", "machine": info, "model": MODEL, "params": p, "modes": {}}
    for mode, rs in runs.items():
        decoded = sum(x["tokens"] - 1 for x in rs)
        result["modes"][mode] = {
            "generations": len(rs),
            "tokens": sum(x["tokens"] for x in rs),
            "decode_tok_s": decoded / sum(x["decode_s"] for x in rs),
            "ttft_ms_p50": statistics.median(x["ttft_s"] for x in rs) * 1000,
            "ttft_ms_mean": statistics.fmean(x["ttft_s"] for x in rs) * 1000,
        }
    tcp, base, unit, passive = runs["tcp"], runs["direct"], runs["unit"], runs["direct-passive"]
    m = result["modes"]
    result["tok_s_ratio_tcp_vs_direct"] = m["tcp"]["decode_tok_s"] / m["direct"]["decode_tok_s"]
    result["tok_s_ratio_tcp_vs_direct_passive"] = m["tcp"]["decode_tok_s"] / m["direct-passive"]["decode_tok_s"]
    result["tok_s_ratio_tcp_vs_unit"] = m["tcp"]["decode_tok_s"] / m["unit"]["decode_tok_s"]

    def rate(x: dict) -> float:
        return (x["tokens"] - 1) / x["decode_s"]

    # Medians of per-pair ratios resist the bursts of other work on a shared machine better.
    result["tok_s_ratio_tcp_vs_direct_paired_p50"] = statistics.median(rate(a) / rate(b) for a, b in zip(tcp, base))
    result["tok_s_ratio_tcp_vs_unit_paired_p50"] = statistics.median(rate(a) / rate(u) for a, u in zip(tcp, unit))
    result["tok_s_ratio_tcp_vs_direct_passive_paired_p50"] = statistics.median(
        rate(a) / rate(b) for a, b in zip(tcp, passive)
    )
    # Paired by (round, prompt): the same question asked moments apart.
    result["ttft_overhead_ms_vs_direct_p50"] = statistics.median(
        (a["ttft_s"] - b["ttft_s"]) * 1000 for a, b in zip(tcp, base)
    )
    result["ttft_overhead_ms_vs_unit_p50"] = statistics.median(
        (a["ttft_s"] - b["ttft_s"]) * 1000 for a, b in zip(tcp, unit)
    )
    result["ttft_overhead_ms_vs_direct_passive_p50"] = statistics.median(
        (a["ttft_s"] - b["ttft_s"]) * 1000 for a, b in zip(tcp, passive)
    )
    result["identical_answers"] = sum(a["text"] == b["text"] == u["text"] for a, b, u in zip(tcp, base, unit))
    result["pairs"] = len(tcp)
    if args.json:
        result["answers"] = {PROMPTS[x["prompt"]]: x["text"] for x in base}
        print(json.dumps(result, indent=2))
        return

    print(
        f"## LLM over TCP vs direct ({MODEL}, greedy, max {args.max_tokens} tokens, n_threads {args.threads}, "
        f"{len(PROMPTS)} prompts × {args.rounds} rounds)"
    )
    print(conditions)
    names = {
        "tcp": "emberflow TCP stream (client ↔ sys ↔ llm unit)",
        "direct": "llama-cpp-python create_chat_completion, in-process",
        "direct-passive": "the same, OMP_WAIT_POLICY=PASSIVE",
        "unit": "LLMUnit in-process (LocalTask), no transport",
    }
    print_table(
        ["path", "decode tok/s", "TTFT p50 (ms)", "TTFT mean (ms)", "tokens"],
        [
            [names[k], f"{v['decode_tok_s']:.1f}", f"{v['ttft_ms_p50']:.1f}", f"{v['ttft_ms_mean']:.1f}", v["tokens"]]
            for k, v in m.items()
        ],
    )
    print()
    print_table(
        ["figure", "value", "target"],
        [
            [
                "tokens/s ratio TCP / direct (all tokens / all decode time)",
                f"{result['tok_s_ratio_tcp_vs_direct']:.3f}",
                "≥ 0.95",
            ],
            [
                "tokens/s ratio TCP / direct (median of pairs)",
                f"{result['tok_s_ratio_tcp_vs_direct_paired_p50']:.3f}",
                "≥ 0.95",
            ],
            [
                "TTFT overhead TCP − direct (median of pairs)",
                f"{result['ttft_overhead_ms_vs_direct_p50']:+.1f} ms",
                "≤ 10 ms",
            ],
            [
                "tokens/s ratio TCP / direct with passive threads (all / median of pairs)",
                f"{result['tok_s_ratio_tcp_vs_direct_passive']:.3f} / "
                f"{result['tok_s_ratio_tcp_vs_direct_passive_paired_p50']:.3f}",
                "",
            ],
            [
                "TTFT overhead TCP − direct with passive threads (median of pairs)",
                f"{result['ttft_overhead_ms_vs_direct_passive_p50']:+.1f} ms",
                "",
            ],
            [
                "tokens/s ratio TCP / in-process unit (all / median of pairs)",
                f"{result['tok_s_ratio_tcp_vs_unit']:.3f} / {result['tok_s_ratio_tcp_vs_unit_paired_p50']:.3f}",
                "",
            ],
            [
                "TTFT overhead TCP − in-process unit (median of pairs)",
                f"{result['ttft_overhead_ms_vs_unit_p50']:+.1f} ms",
                "",
            ],
            ["identical answers (all three paths)", f"{result['identical_answers']}/{result['pairs']}", ""],
        ],
    )


if __name__ == "__main__":
    main()
