"""Unit-native REST and WebSocket sessions generated from unit schemas, and Schemathesis
against the generated OpenAPI (malformed requests never produce a 5xx)."""

from __future__ import annotations

import asyncio
import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from serving.conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def test_units_are_listed_with_their_schemas(base_url):
    units = {u["kind"]: u for u in requests.get(base_url + "/units", headers=AUTH).json()}
    assert {"echo", "llm", "embed"} <= set(units)
    times = units["echo"]["params"]["properties"]["times"]
    assert (times["minimum"], times["maximum"]) == (1, 10)
    spec = requests.get(base_url + "/openapi.json", headers=AUTH).json()
    body = spec["paths"]["/units/echo/infer"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("EchoInferRequest")


def test_one_shot_infer_with_typed_params(base_url):
    r = requests.post(base_url + "/units/echo/infer", headers=AUTH, json={"params": {"times": 3}, "data": "hi"})
    assert r.status_code == 200 and r.json() == {"kind": "echo", "outputs": ["hi", "hi", "hi"], "text": "hihihi"}
    bad = requests.post(base_url + "/units/echo/infer", headers=AUTH, json={"params": {"times": 11}, "data": "hi"})
    assert bad.status_code == 400 and "params.times" in bad.json()["error"]["message"]
    failing = requests.post(
        base_url + "/units/echo/infer", headers=AUTH, json={"params": {"fail_on": "boom"}, "data": "boom"}
    )
    assert failing.status_code == 500 and "boom" in failing.json()["error"]["message"]  # the unit's own reason


def test_websocket_session_begin_continue_end(http_server):
    import websockets

    async def session() -> list[dict]:
        url = f"ws://127.0.0.1:{http_server.http_port}/units/echo/session"
        async with websockets.connect(url, additional_headers=AUTH) as ws:
            await ws.send(json.dumps({"status": 0, "params": {"times": 2}, "data": "hel"}))
            await ws.send(json.dumps({"status": 1, "data": "lo "}))
            await ws.send(json.dumps({"status": 2, "data": "world"}))
            frames = []
            while not frames or frames[-1]["status"] != 2:
                frames.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"status": 3, "params": {"times": 1}, "data": "again"}))  # once, new params
            frames.append(json.loads(await ws.recv()))
            frames.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"status": 7}))
            frames.append(json.loads(await ws.recv()))
            return frames

    frames = asyncio.run(session())
    assert [(f["status"], f["data"]) for f in frames[:3]] == [(1, "hello world"), (1, "hello world"), (2, "")]
    assert [f["seq"] for f in frames[:3]] == [0, 1, 2]
    assert frames[3:5] == [{"status": 1, "seq": 0, "data": "again"}, {"status": 2, "seq": 1, "data": ""}]
    assert frames[5]["status"] == 2 and frames[5]["error"]["code"] == 400


def test_websocket_session_streams_results_while_input_streams(http_server):
    """A unit with on_chunk answers each frame as it arrives: the reply to frame 1 comes back
    before frame 2 is sent. Sessions also refuse out-of-order status frames clearly."""
    import websockets

    async def session() -> list[dict]:
        url = f"ws://127.0.0.1:{http_server.http_port}/units/tally/session"
        got = []
        async with websockets.connect(url, additional_headers=AUTH) as ws:
            await ws.send(json.dumps({"status": 1, "data": "too early"}))
            got.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"status": 0, "params": {}, "data": "one two"}))
            got.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))  # before any more input
            await ws.send(json.dumps({"status": 0, "data": "x"}))  # a begin inside a stream
            got.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"status": 1, "data": "three"}))
            got.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            await ws.send(json.dumps({"status": 2}))  # end, with no more data
            while got[-1]["status"] != 2 or "error" in got[-1]:
                got.append(json.loads(await ws.recv()))
        return got

    got = asyncio.run(session())
    assert got[0]["status"] == 2 and "status 0" in got[0]["error"]["message"]
    assert got[1] == {"status": 1, "seq": 0, "data": {"words": 2, "chunks": 1}}
    assert got[2]["status"] == 2 and "not ended" in got[2]["error"]["message"]
    assert got[3] == {"status": 1, "seq": 1, "data": {"words": 3, "chunks": 2}}
    assert got[4:] == [{"status": 1, "seq": 2, "data": {"words": 3, "chunks": 3}}, {"status": 2, "seq": 3, "data": ""}]


def test_one_requests_failure_does_not_end_anothers_answer(base_url):
    """Two tasks of one unit kind: the error of one inference reaches only its own request,
    though StackFlow's error message names just the unit (not the task or the request)."""
    from concurrent.futures import ThreadPoolExecutor

    def post(params: dict, data: str) -> requests.Response:
        return requests.post(
            f"{base_url}/units/echo/infer", headers=AUTH, json={"params": params, "data": data}, timeout=60
        )

    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(post, {"times": 5, "delay": 0.2}, "slow")
        import time

        time.sleep(0.3)  # the slow answer is under way
        failing = pool.submit(post, {"fail_on": "boom"}, "boom")
        failed, finished = failing.result(), slow.result()
    assert failed.status_code == 500 and "boom" in failed.json()["error"]["message"]
    assert finished.status_code == 200 and finished.json()["outputs"] == ["slow"] * 5


def test_openapi_documents_the_declared_result(base_url):
    spec = requests.get(f"{base_url}/openapi.json", headers=AUTH, timeout=30).json()
    ok = spec["paths"]["/units/tally/infer"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    reply = spec["components"]["schemas"][ok["$ref"].rsplit("/", 1)[1]]
    item = reply["properties"]["outputs"]["items"]
    assert item["$ref"].endswith("/TallyResult")
    assert spec["components"]["schemas"]["TallyResult"]["properties"]["words"]["minimum"] == 0
    assert "/units/tally/resources/{res_id}" in spec["paths"]


def test_resource_routes(base_url):
    url = f"{base_url}/units/tally/resources"
    assert requests.get(url, headers=AUTH, timeout=30).json() == {"kind": "tally", "resources": []}
    put = requests.put(f"{url}/en", headers=AUTH, json={"data": "the of"}, timeout=30)
    assert put.status_code == 200 and put.json() == {"kind": "tally", "resources": ["en"]}
    assert requests.get(url, headers=AUTH, timeout=30).json()["resources"] == ["en"]
    r = requests.post(
        f"{base_url}/units/tally/infer",
        headers=AUTH,
        timeout=30,
        json={"params": {"stopwords": "en", "response_format": "tally.json"}, "data": "the end of it"},
    )
    assert r.status_code == 200 and r.json()["outputs"] == [{"words": 2, "chunks": 1}]
    bad = requests.put(f"{url}/empty", headers=AUTH, json={"data": "  "}, timeout=30)
    assert bad.status_code == 400 and "is empty" in bad.json()["error"]["message"]
    wrong = requests.put(f"{url}/x", headers=AUTH, json={"data": ["not", "text"]}, timeout=30)
    assert wrong.status_code in (400, 422)
    assert requests.delete(f"{url}/en", headers=AUTH, timeout=30).status_code == 200
    gone = requests.delete(f"{url}/en", headers=AUTH, timeout=30)
    assert gone.status_code == 404 and "not loaded" in gone.json()["error"]["message"]
    assert requests.get(f"{base_url}/units/echo/resources", headers=AUTH, timeout=30).status_code == 404  # none


def test_websocket_needs_the_key(http_server):
    import websockets.exceptions

    async def attempt() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{http_server.http_port}/units/echo/session") as ws:
            await ws.recv()

    with pytest.raises(websockets.exceptions.InvalidStatus, match="HTTP 403"):  # refused before the handshake
        asyncio.run(attempt())


# Generation routes of the LLM and the voice units are left out: a malformed-but-accepted request would
# run a real model for seconds. Their validation is tested above and in test_openai.py.
FUZZED = r"^/(units(/(echo|embed)/infer)?|v1/(models|embeddings)|v2.*|health)$"


def test_malformed_requests_never_5xx(base_url):
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable

    schema = schemathesis.openapi.from_url(base_url + "/openapi.json", headers=AUTH).include(path_regex=FUZZED)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures: list[str] = []
    calls = [0]
    for op in operations:

        @given(case=op.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        @settings(
            max_examples=8, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case) -> None:
            response = case.call(base_url=base_url, headers=AUTH, timeout=30)
            calls[0] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

        try:
            check()
        except Unsatisfiable:
            pass  # nothing to malform (e.g. GET /health has no parameters)
    assert not failures, "\n".join(failures)
    assert calls[0] >= 50


def test_more_distinct_params_than_task_slots_reuse_idle_tasks(base_url):
    """Warm tasks are a cache: echo hosts 4 tasks, and 7 different params in turn all get answers
    (the least recently used idle task is released for the new params)."""
    for times in range(1, 8):
        r = requests.post(
            f"{base_url}/units/echo/infer",
            headers=AUTH,
            timeout=60,
            json={"params": {"times": times, "delay": 0.001}, "data": "x"},
        )
        assert r.status_code == 200 and r.json()["outputs"] == ["x"] * times, (times, r.text)


def test_unit_path_overload_gets_429_and_nothing_is_lost(base_url):
    """More concurrent requests than one task may queue (32): the rest get 429 + Retry-After at once."""
    from concurrent.futures import ThreadPoolExecutor

    def call(i: int) -> tuple[int, str | None]:
        r = requests.post(
            base_url + "/units/echo/infer", headers=AUTH, timeout=60, json={"params": {"delay": 0.05}, "data": f"n{i}"}
        )
        if r.status_code == 200:
            assert r.json()["text"] == f"n{i}"  # each answer went to its own request
        return r.status_code, r.headers.get("Retry-After")

    with ThreadPoolExecutor(48) as pool:
        results = list(pool.map(call, range(48)))
    codes = [c for c, _ in results]
    assert set(codes) == {200, 429}, codes
    assert codes.count(200) >= 32 and all(retry == "1" for c, retry in results if c == 429)
