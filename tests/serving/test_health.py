"""/health answers 503 while a preloaded unit is still starting, then 200; probes need no key."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests

from conftest import Server
from support import eventually


def test_health_is_503_while_loading_then_200(tmp_path, monkeypatch):
    here = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    s = Server(
        tmp_path,
        config={"token": "k", "preload": ["slowstart"], "units": {"slowstart": "slow_start_unit:SlowStartUnit"}},
    )
    try:
        url = f"http://127.0.0.1:{s.http_port}"
        first = requests.get(url + "/health", timeout=5)
        assert first.status_code == 503
        assert first.json()["error"]["type"] == "unavailable_error" and "slowstart" in first.json()["error"]["message"]
        assert requests.get(url + "/v2/health/ready", timeout=5).status_code == 503
        assert requests.get(url + "/v2/health/live", timeout=5).status_code == 200
        eventually(lambda: requests.get(url + "/health", timeout=5).status_code == 200, step=0.2)
        assert requests.get(url + "/v2/health/ready", timeout=5).status_code == 200
    finally:
        s.stop()


@pytest.mark.slow
def test_preloaded_llm_is_warm_before_health_says_ok(tmp_path, monkeypatch):
    """`preload: [llm]` loads the default model into the task the chat route uses: /health is 503
    while it loads (the setup is made 2 s slower, so this is seen on any machine), then 200, and the
    first chat runs on that task instead of setting one up."""
    from emberflow.client import Client

    here = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    s = Server(tmp_path, config={"token": "k", "preload": ["llm"], "units": {"llm": "slow_llm_unit:SlowSetupLLM"}})
    try:
        url = f"http://127.0.0.1:{s.http_port}"
        seen = []

        def healthy() -> bool:
            r = requests.get(url + "/health", timeout=5)
            if r.status_code == 200:
                return True
            assert r.status_code == 503, r.text  # starting: unavailable, never an error
            seen.append(r.json()["error"]["message"])
            return False

        eventually(healthy, lambda: seen[-3:])
        assert seen and any("task llm smollm2-135m-instruct" in m for m in seen), seen
        with Client("127.0.0.1", s.port) as c:
            c.request("sys", "auth", data="k")

            def llm_tasks() -> list[str]:
                return [t["work_id"] for t in c.request("sys", "lstask")["data"]["tasks"] if t["unit"] == "llm"]

            warm = llm_tasks()
            assert len(warm) == 1 and c.request(warm[0], "taskinfo")["data"]["stats"]["inferences"] == 0
            r = requests.post(
                url + "/v1/chat/completions",
                headers={"Authorization": "Bearer k"},
                timeout=60,
                json={
                    "model": "smollm2-135m-instruct",
                    "max_tokens": 4,
                    "messages": [{"role": "user", "content": "Hi"}],
                },
            )
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
            assert llm_tasks() == warm  # no new task was set up
            assert c.request(warm[0], "taskinfo")["data"]["stats"]["inferences"] == 1
    finally:
        s.stop()


@pytest.mark.slow
def test_a_crashed_preloaded_llm_is_loaded_again_and_health_says_so(tmp_path, monkeypatch):
    """After the LLM process is killed, the gateway does not wait for a request: the supervisor
    restarts the process, the default model is set up again at once (/health 503 meanwhile), and
    the next chat runs on that new warm task. sys.reset does the same."""
    import signal

    from emberflow.client import Client

    here = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    s = Server(tmp_path, config={"token": "k", "preload": ["llm"], "units": {"llm": "slow_llm_unit:SlowSetupLLM"}})
    url = f"http://127.0.0.1:{s.http_port}"

    def wait_healthy() -> list[int]:
        codes: list[int] = []
        eventually(
            lambda: (
                codes.append(requests.get(url + "/health", timeout=5).status_code) or (codes[1:] and codes[-1] == 200)
            ),
            lambda: codes[-5:],
        )
        return codes[:-1]  # the codes before the first 200 that followed one

    try:
        wait_healthy()
        with Client("127.0.0.1", s.port) as c:
            c.request("sys", "auth", data="k")

            def llm_tasks() -> list[str]:
                return [t["work_id"] for t in c.request("sys", "lstask")["data"]["tasks"] if t["unit"] == "llm"]

            before = llm_tasks()
            os.kill(s.unit_pid("llm"), signal.SIGKILL)
            time.sleep(0.3)  # the supervisor notices the death
            assert 503 in wait_healthy()  # the model is loading again: health says so
            after = llm_tasks()
            assert len(after) == 1 and after != before  # set up again without any request
            r = requests.post(
                url + "/v1/chat/completions",
                headers={"Authorization": "Bearer k"},
                timeout=60,
                json={
                    "model": "smollm2-135m-instruct",
                    "max_tokens": 4,
                    "messages": [{"role": "user", "content": "Hi"}],
                },
            )
            assert r.status_code == 200 and llm_tasks() == after  # it ran on the re-warmed task
            c.request("sys", "reset", check=False)
            time.sleep(0.3)
            assert 503 in wait_healthy() and len(llm_tasks()) == 1
    finally:
        s.stop()
