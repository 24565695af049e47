"""sys ping round trip over TCP vs a raw asyncio TCP echo server; idle RSS; `emberflow up` start time.

    python bench/sys_ping.py [--pings 2000] [--starts 5] [--json]

Both round trips use the same `emberflow.client.Client` (the echo server sends the request back,
and its request_id matches), so the difference is what sys adds: framing, parsing, routing, reply.
Pings alternate between the two servers in blocks, so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time

import psutil
from harness import Daemon, finish_machine, machine, print_table, summary

from emberflow.client import Client

BLOCK = 100  # pings per alternation block
WARMUP = 100  # pings per server before measuring


def serve_echo() -> None:
    """Child mode: the baseline, an asyncio TCP server that writes back whatever it reads."""

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    async def main():
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin

    asyncio.run(main())


def measure_pings(daemon_port: int, echo_port: int, pings: int) -> dict[str, list[float]]:
    clients = {"emberflow sys.ping": Client("127.0.0.1", daemon_port), "asyncio echo": Client("127.0.0.1", echo_port)}
    samples: dict[str, list[float]] = {name: [] for name in clients}
    try:
        for c in clients.values():
            for _ in range(WARMUP):
                c.ping()
        for _ in range(max(1, pings // BLOCK)):
            for name, c in clients.items():
                for _ in range(BLOCK):
                    t0 = time.perf_counter()
                    c.ping()
                    samples[name].append((time.perf_counter() - t0) * 1e6)
    finally:
        for c in clients.values():
            c.close()
    return samples


# Start-up and idle RSS are measured with the TCP gateway alone (issue 2's control plane) and with
# the default HTTP and gRPC gateways too (on free ports: their fixed defaults could be taken here).
GATEWAYS = {"StackFlow TCP only": {}, "TCP + HTTP + gRPC gateways": {"http_port": 0, "grpc_port": 0}}


def measure_startups(starts: int, config: dict) -> tuple[list[float], list[float]]:
    """Seconds from launching `emberflow up` to its 'listening' line (checked by a real ping), and
    the idle RSS (MiB) of sys one second later, for each start."""
    times, rss = [], []
    for _ in range(starts):
        with Daemon(config) as d:
            times.append(d.startup_s)
            with Client("127.0.0.1", d.port) as c:
                c.ping()
            time.sleep(1.0)  # let start-up allocations settle
            rss.append(psutil.Process(d.proc.pid).memory_info().rss / 2**20)
    return times, rss


def measure_rss(d: Daemon) -> dict[str, float]:
    """RSS in MiB of the llm unit process once the model is loaded, and of sys then."""
    sys_proc = psutil.Process(d.proc.pid)
    out = {}
    with Client("127.0.0.1", d.port, timeout=120) as c:
        wid = c.setup(
            "llm",
            {
                "model": "smollm2-135m-instruct",
                "response_format": "llm.utf-8.stream",
                "input": "llm.utf-8",
                "enoutput": True,
                "max_token_len": 8,
            },
        )
        c.ask(wid, "Hi")  # one answer, so the compute buffers are allocated too
        units = sys_proc.children()
        out["llm_unit_mib"] = sum(p.memory_info().rss for p in units) / 2**20
        out["sys_with_llm_mib"] = sys_proc.memory_info().rss / 2**20
        c.exit(wid)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pings", type=int, default=2000, help="measured pings per server")
    ap.add_argument("--starts", type=int, default=5, help="daemon starts for the start-up time")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    ap.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.echo_server:
        serve_echo()
        return

    result: dict = {"bench": "sys_ping", "machine": machine()}
    echo = subprocess.Popen(
        [sys.executable, __file__, "--echo-server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        echo_port = int(echo.stdout.readline())
        with Daemon() as d:
            samples = measure_pings(d.port, echo_port, args.pings)
            result["rss"] = measure_rss(d)
    finally:
        echo.stdin.close()
        try:
            echo.wait(5)
        except subprocess.TimeoutExpired:
            echo.kill()
            echo.wait()
    result["ping_us"] = {name: summary(v) for name, v in samples.items()}
    result["startup"] = {}
    for name, config in GATEWAYS.items():
        times, rss = measure_startups(args.starts, config)
        result["startup"][name] = {
            "median_s": statistics.median(times),
            "min_s": min(times),
            "max_s": max(times),
            "runs_s": times,
            "idle_rss_mib_median": statistics.median(rss),
        }
    conditions = finish_machine(result["machine"])

    if args.json:
        print(json.dumps(result, indent=2))
        return
    ping = result["ping_us"]
    sysp, base = ping["emberflow sys.ping"], ping["asyncio echo"]
    print(f"## sys ping round trip over TCP, loopback ({sysp['n']} pings each, µs)")
    print(conditions)
    print_table(
        ["server", "p50", "p99", "mean"],
        [[name, f"{s['p50']:.0f}", f"{s['p99']:.0f}", f"{s['mean']:.0f}"] for name, s in ping.items()]
        + [
            [
                "overhead (sys − echo)",
                f"{sysp['p50'] - base['p50']:+.0f}",
                f"{sysp['p99'] - base['p99']:+.0f}",
                f"{sysp['mean'] - base['mean']:+.0f}",
            ],
            [
                "ratio (sys / echo)",
                f"{sysp['p50'] / base['p50']:.2f}",
                f"{sysp['p99'] / base['p99']:.2f}",
                f"{sysp['mean'] / base['mean']:.2f}",
            ],
        ],
    )
    print()
    rss = result["rss"]
    rows = []
    for name, st in result["startup"].items():
        rows.append([f"RSS of sys, idle, no units ({name})", f"{st['idle_rss_mib_median']:.1f} MiB"])
        rows.append(
            [
                f"`emberflow up` launch → accepting, median of {len(st['runs_s'])} ({name})",
                f"{st['median_s'] * 1000:.0f} ms (min {st['min_s'] * 1000:.0f}, max {st['max_s'] * 1000:.0f})",
            ]
        )
    rows.append(["RSS of the llm unit process, SmolLM2-135M loaded", f"{rss['llm_unit_mib']:.1f} MiB"])
    rows.append(["RSS of sys with the llm task open", f"{rss['sys_with_llm_mib']:.1f} MiB"])
    print_table(["figure", "value"], rows)


if __name__ == "__main__":
    main()
