"""Several warm tasks per model: concurrent chats run side by side instead of one after another,
the pool grows only under concurrent demand, falls back when the unit's task slots are taken, and
exits surplus tasks once they idle."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from emberflow.client import Client, ServerError
from serving.conftest import API_KEY
from support import Server, eventually

MODEL = "smollm2-135m-instruct"


def _tcp(port: int, token: str) -> Client:
    c = Client("127.0.0.1", port)
    c.request("sys", "auth", data=token)
    return c


def _tasks(c: Client, unit: str) -> dict[str, int]:
    """work_id -> inferences run so far, for every live task of a unit."""
    live = [t["work_id"] for t in c.request("sys", "lstask")["data"]["tasks"] if t["unit"] == unit]
    out = {}
    for w in live:
        try:
            out[w] = c.request(w, "taskinfo")["data"]["stats"]["inferences"]
        except ServerError as e:  # retired (idle) between the listing and the question
            assert e.code == -6, e
    return out


@pytest.mark.slow
def test_two_streamed_chats_interleave_on_two_llm_tasks(http_server, openai_client):
    def chat(topic: str, marks: dict) -> None:
        stream = openai_client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Write a long story about {topic}."}],
            temperature=0,
            max_tokens=96,
            stream=True,
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and "first" not in marks:
                marks["first"] = time.monotonic()
        marks["done"] = time.monotonic()

    def pair() -> list[dict]:
        marks: list[dict] = [{}, {}]
        threads = [threading.Thread(target=chat, args=(t, m)) for t, m in zip(("a dragon", "a robot"), marks)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert all("done" in m for m in marks)
        return marks

    pair()  # the second task is set up on this concurrent demand (and loads its model)
    with _tcp(http_server.port, API_KEY) as c:
        before = _tasks(c, "llm")
        assert len(before) == 2, before  # the default: instances llm = 2
        marks = pair()
        after = _tasks(c, "llm")
    # interleaved: each answer started before either had finished
    assert max(m["first"] for m in marks) < min(m["done"] for m in marks), marks
    ran = {w for w in after if after[w] > before.get(w, 0)}
    assert len(ran) == 2, (before, after)  # one chat on each task


def _tasks_of_gateway(c: Client, held: list[str]) -> dict[str, int]:
    return {w: n for w, n in _tasks(c, "echo").items() if w not in held}


def test_pool_grows_on_demand_falls_back_when_full_and_idles_out(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBERFLOW_IDLE_RELEASE_S", "1.5")
    s = Server(tmp_path, config={"token": "k", "instances": {"echo": 2, "llm": 5}})
    url = f"http://127.0.0.1:{s.http_port}/units/echo/infer"
    auth = {"Authorization": "Bearer k"}

    def call(i: int) -> None:
        r = requests.post(url, headers=auth, json={"params": {"delay": 0.25, "times": 3}, "data": f"n{i}"}, timeout=30)
        assert r.status_code == 200 and r.json()["text"] == f"n{i}" * 3

    def pair() -> list[None]:
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(call, range(2)))

    def idle_out(c: Client) -> None:
        eventually(lambda: len(_tasks(c, "echo")) == 1, lambda: "the surplus task was never released", step=0.2)

    try:
        # asking for more tasks than the unit hosts is said at start, and capped
        assert any("instances: llm asks for 5" in line and "max_tasks" in line for line in s.log), "".join(s.log)
        with _tcp(s.port, "k") as c:
            pair()  # cold: both setups share one new unit process
            units = [u for u in c.request("sys", "lstask")["data"]["units"] if u["kind"] == "echo"]
            assert len(units) == 1 and len(_tasks(c, "echo")) == 2
            idle_out(c)
            call(0)
            assert len(_tasks(c, "echo")) == 1  # one request at a time: one task is enough
            before = _tasks(c, "echo")
            pair()
            after = _tasks(c, "echo")
            assert len(after) == 2
            # side by side: one request on each task, not both on the first one after the other
            assert sorted(after[w] - before.get(w, 0) for w in after) == [1, 1], (before, after)
            idle_out(c)

            # StackFlow clients take the remaining slots (echo hosts 4): the gateway queues on its task
            held = [c.setup("echo", {"times": 1}) for _ in range(3)]
            ((pool_task, runs),) = _tasks_of_gateway(c, held).items()
            pair()
            assert _tasks_of_gateway(c, held) == {pool_task: runs + 2}  # one after the other, and no error
            assert any("no extra task" in line for line in s.log), "".join(s.log[-20:])
            for w in held:
                c.exit(w)
    finally:
        s.stop()
