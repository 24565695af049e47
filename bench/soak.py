"""Soak: StackFlow TCP, OpenAI HTTP and KServe gRPC clients for N minutes while unit processes are
SIGKILLed now and then. Ends with what the hardening issue asks for:

- no request unanswered (each gets its answer or a clear error within its bound),
- no task leaked (`lstask` and the gateway's `/metrics` back to their baseline),
- sys RSS within 10 % of its value after warm-up.

    python bench/soak.py --minutes 10 [--kill-every 45] [--json soak.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Daemon

from emberflow.client import Client, ServerError

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "tests" / "fixtures" / "toolchain" / "digits_cnn.onnx"
TOKEN = "soak"
LLM = "smollm2-135m-instruct"
EMBED = "minilm-l6-v2-int8"
BOUND_S = 180.0  # a request not answered within this is "unanswered"


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.unanswered: list[str] = []

    def add(self, client: str, outcome: str) -> None:
        with self.lock:
            self.counts[f"{client} {outcome}"] += 1
            if outcome == "unanswered":
                self.unanswered.append(client)


def _tcp_worker(port: int, stop: threading.Event, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            with Client("127.0.0.1", port, timeout=BOUND_S) as c:
                c.request("sys", "auth", data=TOKEN)
                while not stop.is_set():
                    kind = rng.choice(["echo", "echo", "llm"])
                    try:
                        if kind == "echo":
                            w = c.setup("echo", {"times": rng.randint(1, 3), "delay": 0.01})
                            for _ in range(rng.randint(1, 5)):
                                c.ask(w, "soak")
                        else:
                            w = c.setup("llm", {"model": LLM, "max_token_len": 16, "response_format": "llm.utf-8"})
                            c.ask(w, "Say hi.")
                        c.exit(w)
                        tally.add(f"tcp-{kind}", "ok")
                    except ServerError as e:
                        tally.add(f"tcp-{kind}", f"error {e.code}")  # a task killed under us: told, not hung
                    except TimeoutError:
                        tally.add(f"tcp-{kind}", "unanswered")
        except (OSError, ConnectionError):
            tally.add("tcp", "connection lost")
            time.sleep(0.5)


def _http_once(url: str, what: str, rng: random.Random) -> str:
    """One HTTP request; its outcome."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    if what == "stream":
        body = {"model": LLM, "max_tokens": 24, "stream": True, "messages": [{"role": "user", "content": "A story?"}]}
        with requests.post(f"{url}/v1/chat/completions", headers=auth, timeout=BOUND_S, stream=True, json=body) as r:
            if r.status_code != 200:
                return f"status {r.status_code}"
            leave_after = rng.choice([None, None, 2])  # some clients hang up mid-answer
            for n, line in enumerate(ln for ln in r.iter_lines() if ln):
                if line == b"data: [DONE]":
                    return "ok"
                if leave_after is not None and n >= leave_after:
                    return "left"
            return "stream ended without [DONE]"
    if what == "chat":
        r = requests.post(
            f"{url}/v1/chat/completions",
            headers=auth,
            timeout=BOUND_S,
            json={"model": LLM, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]},
        )
    elif what == "embed":
        r = requests.post(
            f"{url}/v1/embeddings",
            headers=auth,
            timeout=BOUND_S,
            json={"model": EMBED, "input": ["a sentence", "another one"]},
        )
    else:
        r = requests.post(
            f"{url}/units/echo/infer", headers=auth, timeout=BOUND_S, json={"params": {"times": 2}, "data": "soak"}
        )
    return "ok" if r.status_code == 200 else f"status {r.status_code}"


def _http_worker(url: str, stop: threading.Event, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        what = rng.choice(["chat", "stream", "embed", "echo"])
        try:
            tally.add(f"http-{what}", _http_once(url, what, rng))
        except requests.Timeout:
            tally.add(f"http-{what}", "unanswered")
        except requests.ConnectionError:
            tally.add(f"http-{what}", "connection lost")
            time.sleep(0.5)


def _grpc_worker(port: int, stop: threading.Event, tally: Tally) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    x = np.load(DIGITS.parent / "digits_data.npz")["test_x"][:4].astype(np.float32)
    while not stop.is_set():
        try:
            inp = grpcclient.InferInput("image", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            client.infer("digits", [inp], headers={"authorization": f"Bearer {TOKEN}"}, client_timeout=BOUND_S)
            tally.add("grpc-digits", "ok")
        except Exception as e:  # tritonclient raises its own error type for every failure
            tally.add("grpc-digits", "unanswered" if "Deadline" in str(e) else f"error {str(e)[:60]}")


def _killer(daemon: Daemon, stop: threading.Event, every: float, kills: list[str], seed: int) -> None:
    rng = random.Random(seed)
    while not stop.wait(every):
        units = [
            p
            for p in psutil.Process(daemon.proc.pid).children(recursive=True)
            if "emberflow.unit.host" in " ".join(p.cmdline())
        ]
        if units:
            victim = rng.choice(units)
            kind = victim.cmdline()[victim.cmdline().index("--kind") + 1]
            victim.send_signal(signal.SIGKILL)
            kills.append(kind)


def _tasks(port: int) -> list[str]:
    with Client("127.0.0.1", port, timeout=30) as c:
        c.request("sys", "auth", data=TOKEN)
        return sorted(t["work_id"] for t in c.request("sys", "lstask")["data"]["tasks"])


def _metric(url: str, name: str) -> float:
    text = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--kill-every", type=float, default=45.0, help="seconds between SIGKILLs of a unit process")
    ap.add_argument("--tcp", type=int, default=3)
    ap.add_argument("--http", type=int, default=4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"emberflow-soak-{os.getpid()}"
    repo = workdir / "repo"
    (repo / "digits" / "1").mkdir(parents=True, exist_ok=True)
    shutil.copy(DIGITS, repo / "digits" / "1" / "model.onnx")
    # the test suite's echo unit; one warm LLM task for HTTP, so StackFlow clients get the other slot
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "tests"), os.environ.get("PYTHONPATH")) if p)
    config = {
        "token": TOKEN,
        "http_port": 0,
        "grpc_port": 0,
        "model_repository": str(repo),
        "preload": ["llm"],
        "units": {"echo": "units_for_tests:EchoUnit"},
        "instances": {"llm": 1},
    }
    with Daemon(config, start_timeout=120) as d:
        url = f"http://127.0.0.1:{d.server.http_port}"
        deadline = time.monotonic() + 120
        while requests.get(f"{url}/health", timeout=10).status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit("never healthy:\n" + d.log())
            time.sleep(0.5)
        # warm-up: every route once, so the baseline has its warm tasks and loaded models
        for what in ("chat", "embed", "echo"):
            _http_once(url, what, random.Random(0))
        sys_proc = psutil.Process(d.proc.pid)
        baseline_tasks, rss0 = _tasks(d.port), sys_proc.memory_info().rss
        print(f"baseline: {len(baseline_tasks)} tasks {baseline_tasks}, sys RSS {rss0 / 2**20:.0f} MiB", flush=True)
        tally, kills = Tally(), []
        stop = threading.Event()
        threads = [threading.Thread(target=_tcp_worker, args=(d.port, stop, tally, i)) for i in range(args.tcp)]
        threads += [threading.Thread(target=_http_worker, args=(url, stop, tally, 100 + i)) for i in range(args.http)]
        threads += [threading.Thread(target=_grpc_worker, args=(d.server.grpc_port, stop, tally))]
        threads += [threading.Thread(target=_killer, args=(d, stop, args.kill_every, kills, 7))]
        started = time.monotonic()
        for t in threads:
            t.start()
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(30)
            with tally.lock:
                done = sum(tally.counts.values())
            print(f"{(time.monotonic() - started) / 60:4.1f} min: {done} requests, kills {kills}", flush=True)
        stop.set()
        for t in threads:
            t.join(BOUND_S + 30)
        hung = [t.name for t in threads if t.is_alive()]
        # back to baseline: give retiring surplus tasks their idle time, then compare
        deadline = time.monotonic() + 90
        while (tasks := _tasks(d.port)) and len(tasks) > len(baseline_tasks) and time.monotonic() < deadline:
            time.sleep(2)
        depth = _metric(url, "emberflow_queue_depth")
        rss1 = sys_proc.memory_info().rss
        result = {
            "minutes": args.minutes,
            "requests": dict(sorted(tally.counts.items())),
            "kills": kills,
            "unanswered": len(tally.unanswered),
            "hung_clients": hung,
            "tasks_baseline": len(baseline_tasks),
            "tasks_after": len(tasks),
            "queue_depth_after": depth,
            "sys_rss_mib": [round(rss0 / 2**20, 1), round(rss1 / 2**20, 1)],
            "sys_rss_ratio": round(rss1 / rss0, 3),
        }
    shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    ok = (
        not result["unanswered"]
        and not hung
        and result["tasks_after"] <= result["tasks_baseline"]
        and depth == 0
        and result["sys_rss_ratio"] <= 1.10
    )
    print("soak:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
