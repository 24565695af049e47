"""A unit placed on a Ray node vs the same unit as a local process, in one daemon, in one run.

    python bench/ray_placement.py [--rounds 5] [--requests 300] [--frames 1000] [--json]

A 2-node Ray cluster on loopback (tests/bridges/ray_cluster.py: a head, node B), and one
`emberflow up` whose `*_r` kinds (bench/bridges_units.py: the same unit classes under another
name) are placed on node B while the originals run locally. Rounds alternate local / remote so
that load from other processes hits both. Figures:

- LLM TTFT and tokens/s over StackFlow TCP (`llm` vs `llm_r`, same model and prompt);
- request overhead: round trip of a one-chunk request (`ticker` vs `ticker_r`), p50/p99, and
  the remote one minus the local one;
- streamed chunk gap at the client: 200 chunks yielded back to back;
- one bus hop: the same frames published by one local ticker to a local sink (ipc) and to a
  sink on node B (tcp), publish stamp -> the receiving host's recv stamp (one clock: one box);
- restart: SIGKILL of the host process (the Ray actor's worker, or the local process) -> the
  supervisor says ready again, and -> a new task set up;
- Ray's own memory: PSS of each node's Ray processes (raylet, GCS, ...), and of the actor workers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time

import psutil
from harness import BENCH_DIR, Daemon, finish_machine, machine, print_table, summary

from emberflow.client import Client

sys.path.insert(0, str(BENCH_DIR.parent / "tests"))
import contextlib
import itertools

from bridges.ray_cluster import LOOPBACK, LoopbackCluster

UNITS = {
    "ticker": "bench_units:Ticker",
    "sink": "bench_units:Sink",
    "hopsrc": "bridges_units:HopSource",
    "ticker_r": "bridges_units:RemoteTicker",
    "sink_r": "bridges_units:RemoteSink",
    "llm_r": "bridges_units:RemoteLLM",
}
ON_B = {"backend": "ray", "resources": {"node_b": 1}, "max_restarts": -1}
LLM = {
    "model": "smollm2-135m-instruct",
    "response_format": "llm.utf-8.stream",
    "input": "llm.utf-8.stream",
    "max_token_len": 64,
    "temperature": 0.0,
    "prompt_suffix": "",
    "n_threads": 1,
}  # one thread each: on 2 busy cores, 2-thread decoding waits on the scheduler
PROMPT = "Tell me about the history of Paris."


def ms(values: list[float]) -> dict[str, float]:
    return {k: round(v * 1000, 3) if k != "n" else v for k, v in summary(values).items()}


# --- measurements ------------------------------------------------------------------------------
def llm_round(c: Client, work_id: str) -> tuple[float, float]:
    sent = time.monotonic()
    arrivals = []
    for m in c.outputs(work_id, c.infer(work_id, PROMPT), timeout=120):
        if m["data"]["delta"]:
            arrivals.append(time.monotonic())
    ttft = arrivals[0] - sent
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    return ttft, rate


def request_rtt(c: Client, work_id: str) -> float:
    sent = time.monotonic()
    for _ in c.outputs(work_id, c.infer(work_id, {"count": 1, "rate": 1e6, "size": 16}, object="ticker.json")):
        pass
    return time.monotonic() - sent


def chunk_gaps(c: Client, work_id: str, count: int = 200) -> list[float]:
    arrivals = [
        time.monotonic()
        for m in c.outputs(work_id, c.infer(work_id, {"count": count, "rate": 1e6, "size": 16}, object="ticker.json"))
        if m["data"]["delta"]
    ]
    return [b - a for a, b in itertools.pairwise(arrivals)]


def hop_round(c: Client, ticker: str, sinks: dict[str, str], frames: int) -> dict[str, list[float]]:
    c.infer(ticker, {"count": frames, "rate": 1000, "size": 64}, object="ticker.json")
    out = {}
    for name, sink in sinks.items():
        figures = next(c.outputs(sink, timeout=frames / 1000 + 60))["data"]
        out[name] = [us / 1e6 for i, us in zip(figures["index"], figures["socket_us"], strict=True) if i >= 50]
    return out


def unit_state(c: Client, host: str) -> dict:
    return next(u for u in c.request("sys", "lstask")["data"]["units"] if u["host"] == host)


def restart(c: Client, kind: str, params: dict) -> tuple[float, float]:
    """SIGKILL the host of `kind`: seconds until it is ready again, and until a new task is set up."""
    old = unit_state(c, kind)
    os.kill(old["pid"], signal.SIGKILL)
    killed = time.monotonic()
    while True:
        state = unit_state(c, kind)
        if state["state"] == "ready" and state["pid"] != old["pid"]:
            break
        time.sleep(0.01)
    ready = time.monotonic() - killed
    work_id = c.setup(kind, params)
    set_up = time.monotonic() - killed
    c.exit(work_id)
    return ready, set_up


def pss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += psutil.Process(pid).memory_full_info().pss
    return round(total / 2**20, 1)


def ray_memory(cluster: LoopbackCluster, actor_pids: set[int]) -> dict[str, dict[str, float]]:
    out = {}
    for name, node in cluster.nodes.items():
        system = {info.process.pid for infos in node.all_processes.values() for info in infos}
        for pid in list(system):
            with contextlib.suppress(psutil.NoSuchProcess):
                system |= {p.pid for p in psutil.Process(pid).children(recursive=True)}
        workers = {p for p in system if p in actor_pids}
        idle = {p for p in system - workers if "default_worker.py" in " ".join(_cmdline(p))}  # pre-started workers
        out[name] = {
            "ray_system_mib": pss_mib(sorted(system - workers - idle)),
            "idle_workers_mib": pss_mib(sorted(idle)),
            "unit_actors_mib": pss_mib(sorted(workers)),
        }
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.NoSuchProcess:
        return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=300, help="requests per kind per round (overhead)")
    ap.add_argument("--frames", type=int, default=1000, help="frames per hop round")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    info = machine()
    t0 = time.monotonic()
    # Ray's workers import the bench units: the raylets' environment must name this folder
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p)
    cluster = LoopbackCluster()
    try:
        cluster.add_node("node_b")
        cluster_up_s = time.monotonic() - t0
        config = {
            "units": UNITS,
            "ray_address": cluster.address,
            "bus_host": LOOPBACK,
            "unit_ready_timeout": 120,
            "restart_backoff": [0.0, 0.0],
            "placement": {"llm_r": ON_B, "ticker_r": ON_B, "sink_r": ON_B},
        }
        results = run(config, args, cluster)
    finally:
        cluster.shutdown()
    results["cluster_up_s"] = round(cluster_up_s, 1)
    report(results, finish_machine(info), info, args.json)


def run(config: dict, args: argparse.Namespace, cluster: LoopbackCluster) -> dict:
    r: dict = {
        "ttft": {"local": [], "remote": []},
        "tok_s": {"local": [], "remote": []},
        "rtt": {"local": [], "remote": []},
        "gap": {"local": [], "remote": []},
        "hop": {"local": [], "remote": []},
        "restart": {},
    }
    with Daemon(config, start_timeout=120) as d, Client("127.0.0.1", d.port, timeout=120) as c:
        llm = {"local": c.setup("llm", LLM), "remote": c.setup("llm_r", LLM)}
        tick = {"local": c.setup("ticker", {}), "remote": c.setup("ticker_r", {})}
        source = c.setup("hopsrc", {"enoutput": False})
        sinks = {"local": c.setup("sink", {"input": [source]}), "remote": c.setup("sink_r", {"input": [source]})}
        for side in ("local", "remote"):  # warm-up: first tokens, first frames
            llm_round(c, llm[side])
            request_rtt(c, tick[side])
        for _ in range(args.rounds):
            for side in ("local", "remote"):
                ttft, rate = llm_round(c, llm[side])
                r["ttft"][side].append(ttft)
                r["tok_s"][side].append(rate)
                r["rtt"][side] += [request_rtt(c, tick[side]) for _ in range(args.requests)]
                r["gap"][side] += chunk_gaps(c, tick[side])
            for side, values in hop_round(c, source, sinks, args.frames).items():
                r["hop"][side] += values
        for w in [*llm.values(), *tick.values(), source, *sinks.values()]:
            c.exit(w)
        r["restart"] = {"local": restart(c, "ticker", {}), "remote": restart(c, "ticker_r", {})}
        actors = {
            u["pid"]
            for u in c.request("sys", "lstask")["data"]["units"]
            if u["placement"]["backend"] == "ray" and u["pid"]
        }
        r["ray_memory"] = ray_memory(cluster, actors)  # while the actors live
    return r


def report(r: dict, conditions: str, info: dict, as_json: bool) -> None:
    ratio = lambda a, b: round(a / b, 2) if b else None
    rtt = {s: ms(v) for s, v in r["rtt"].items()}
    gap = {s: ms(v) for s, v in r["gap"].items()}
    hop = {s: ms(v) for s, v in r["hop"].items()}
    ttft = {s: ms(v) for s, v in r["ttft"].items()}
    tok = {s: round(statistics.median(v), 1) for s, v in r["tok_s"].items()}
    overhead = {q: round(rtt["remote"][q] - rtt["local"][q], 3) for q in ("p50", "p99")}
    restart = {s: {"ready_s": round(a, 3), "ready_and_setup_s": round(b, 3)} for s, (a, b) in r["restart"].items()}
    result = {
        "bench": "ray_placement",
        "machine": info,
        "cluster_up_s": r["cluster_up_s"],
        "rtt_ms": rtt,
        "remote_overhead_ms": overhead,
        "chunk_gap_ms": gap,
        "hop_ms": hop,
        "ttft_ms": ttft,
        "tokens_per_s": tok,
        "restart": restart,
        "ray_memory_mib": r["ray_memory"],
    }
    if as_json:
        print(json.dumps(result, indent=1))
        return
    print(
        f"## A unit on a Ray node vs a local process\n\n{conditions}; 2-node Ray cluster on loopback "
        f"up in {r['cluster_up_s']} s\n"
    )

    def row(label: str, local: float, remote: float) -> list[object]:
        return [label, local, remote, ratio(remote, local)]

    rows = [
        row("LLM TTFT p50 (ms)", ttft["local"]["p50"], ttft["remote"]["p50"]),
        row("LLM tokens/s (median)", tok["local"], tok["remote"]),
    ]
    for label, figures in (("request round trip", rtt), ("streamed chunk gap", gap), ("one bus hop", hop)):
        rows += [row(f"{label} {q} (ms)", figures["local"][q], figures["remote"][q]) for q in ("p50", "p99")]
    for label, key in (
        ("restart: kill -> ready (s)", "ready_s"),
        ("restart: kill -> new task (s)", "ready_and_setup_s"),
    ):
        rows.append(row(label, restart["local"][key], restart["remote"][key]))
    print_table(["", "local process", "Ray actor on node B", "remote / local"], rows)
    print(
        f"\nremote call overhead (remote - local round trip): p50 {overhead['p50']} ms, p99 {overhead['p99']} ms "
        f"(targets 2 ms and 10 ms)\n"
    )
    memory = r["ray_memory"].items()
    print_table(
        ["node", "Ray system processes PSS (MiB)", "idle Ray workers (MiB)", "unit actors (MiB)"],
        [[n, m["ray_system_mib"], m["idle_workers_mib"], m["unit_actors_mib"]] for n, m in memory],
    )


if __name__ == "__main__":
    main()
