"""llama.cpp decode speed with its OpenMP threads spinning or sleeping between tokens.

    python bench/llm_wait_policy.py [--rounds 3] [--tokens 48]

llama-cpp-python is built with OpenMP here: between two tokens its team of threads spin-waits
(GOMP's active policy) unless told otherwise; so do ggml's barriers between the operations of one
token, which are OpenMP barriers in this build. This measures, in one run, the policies the llm
unit could set (units/llm.py): the default model, greedy, `--tokens` new tokens, for each policy
and 1 or 2 threads, each in a fresh process (the policy is read when libgomp loads), rotated each
round so the load of the moment hits every case alike. Print the load: on an idle machine the
policies should be close; the gap is what other work on the cores costs a spinning team.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# (label, environment for libgomp, threads). GOMP_SPINCOUNT bounds the spin before sleeping: ggml's
# barriers inside one token are microseconds apart, the gap between two tokens is milliseconds.
POLICIES = {
    "spin (default)": {},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=100000": {"GOMP_SPINCOUNT": "100000"},
}
CASES = [(label, threads) for label in POLICIES for threads in (1, 2)]
PROMPT = "<|im_start|>user\nWhat is the capital of France? Tell me about it.<|im_end|>\n<|im_start|>assistant\n"


def child(threads: int, tokens: int) -> None:
    from llama_cpp import Llama

    from emberflow.models.catalogue import Catalogue

    cat = Catalogue()
    llm = Llama(
        model_path=str(cat.weights_path(cat.resolve("smollm2-135m-instruct").descriptor)),
        n_ctx=512,
        n_threads=threads,
        verbose=False,
    )
    prompt = llm.tokenize(PROMPT.encode(), special=True)
    for _ in zip(range(4), llm.generate(prompt, temp=0.0, reset=True), strict=False):
        pass  # warm-up
    start, n = time.perf_counter(), 0
    for _ in llm.generate(prompt, temp=0.0, reset=True):
        n += 1
        if n >= tokens:
            break
    print(json.dumps({"tok_s": n / (time.perf_counter() - start)}))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.tokens)
        return 0
    load = os.getloadavg()[0]
    got: dict[tuple[str, int], list[float]] = {c: [] for c in CASES}
    for r in range(args.rounds):
        for policy, threads in CASES[r % len(CASES) :] + CASES[: r % len(CASES)]:
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
            env.update(POLICIES[policy])
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(threads), "--tokens", str(args.tokens)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            got[(policy, threads)].append(json.loads(out.strip().splitlines()[-1])["tok_s"])
    print(
        f"{args.rounds} rounds x {args.tokens} tokens; load average (1 min) {load:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end, {os.cpu_count()} CPUs"
    )
    print("| wait between barriers | threads | tok/s median | runs |")
    print("|---|---|---|---|")
    for (policy, threads), v in got.items():
        print(f"| {policy} | {threads} | {statistics.median(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
