"""KServe v2 REST with `tritonclient[http]`: health, metadata, binary and JSON tensors (results
equal to running the Engine directly), dynamic batching, the repository API, hot reload."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

from serving.repo_models import DIGITS, add_model, digits_inputs, make_count_model, make_slow_model
from support import Server, eventually

API_KEY = "sk-kserve"


def auth() -> dict:
    """A fresh dict per call: tritonclient adds Inference-Header-Content-Length to the one it is given."""
    return {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def repo_server(tmp_path_factory, monkeypatch_module):
    tmp = tmp_path_factory.mktemp("kserve")
    repo = tmp / "models"
    add_model(repo, "digits", 1, DIGITS, "max_batch_size: 32\nmax_queue_delay_ms: 25\ninstances: 1\n")
    add_model(repo, "slow", 1, make_slow_model(tmp / "slow.onnx"), "max_batch_size: 1\ninstances: 1\nmax_queue: 3\n")
    add_model(repo, "count", 1, make_count_model(tmp / "count.onnx"))
    monkeypatch_module.setenv("EMBERFLOW_REPOSITORY_POLL_S", "0.2")
    s = Server(tmp, config={"model_repository": str(repo), "token": API_KEY})
    s.repo = repo
    yield s
    s.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def client(repo_server):
    return th.InferenceServerClient(f"127.0.0.1:{repo_server.http_port}", concurrency=16)


@pytest.fixture(scope="module")
def engine():
    from emberflow.runtime import Engine

    return Engine(DIGITS)


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready(headers=auth())
    assert client.is_model_ready("digits", headers=auth())
    meta = client.get_server_metadata(headers=auth())
    assert meta["name"] == "emberflow" and "binary_tensor_data" in meta["extensions"]
    m = client.get_model_metadata("digits", headers=auth())
    assert m["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert m["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]


@pytest.mark.parametrize("binary", [True, False])
def test_infer_equals_the_engine(client, engine, binary):
    x = digits_inputs(5)
    inp = th.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = th.InferRequestedOutput("logits", binary_data=binary)
    r = client.infer("digits", [inp], outputs=[out], request_id="42", headers=auth())
    got = r.as_numpy("logits")
    np.testing.assert_allclose(got, engine([x])[0], rtol=1e-5, atol=1e-6)
    response = r.get_response()
    assert response["id"] == "42" and response["model_name"] == "digits" and response["model_version"] == "1"
    assert ("data" in response["outputs"][0]) is (not binary)


def test_a_string_input_model_takes_bytes(client):
    """An ONNX tensor(string) input is KServe BYTES, in the metadata and at inference."""
    assert client.get_model_metadata("count", headers=auth())["inputs"][0]["datatype"] == "BYTES"
    text = th.InferInput("text", [3], "BYTES")
    text.set_data_from_numpy(np.array([b"a", b"bb", b"c"], dtype=object))
    assert client.infer("count", [text], headers=auth()).as_numpy("n").tolist() == [3]


def test_wrong_inputs_are_400_with_the_reason(client):
    x = np.zeros((1, 3), np.float32)
    inp = th.InferInput("image", [1, 3], "FP32")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException) as e:
        client.infer("digits", [inp], headers=auth())
    assert e.value.status() == "400" and "image" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        client.infer("nope", [inp], headers=auth())
    assert e.value.status() == "404"
    with pytest.raises(InferenceServerException) as e:  # the API key is required beyond health probes
        client.get_model_metadata("digits")
    assert e.value.status() == "401"


def test_concurrent_requests_are_batched_and_each_gets_its_rows(client, engine, repo_server):
    x = digits_inputs(64)

    def send(i: int):
        inp = th.InferInput("image", [2, 1, 8, 8], "FP32")
        inp.set_data_from_numpy(x[2 * i : 2 * i + 2])
        return client.async_infer("digits", [inp], headers=auth())  # tritonclient's own concurrency

    pending = [send(i) for i in range(32)]
    results = [p.get_result(timeout=30).as_numpy("logits") for p in pending]
    np.testing.assert_allclose(np.concatenate(results), engine([x])[0], rtol=1e-5, atol=1e-5)
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{repo_server.http_port}/metrics", headers=auth())
    text = urllib.request.urlopen(req, timeout=10).read().decode()
    count = sum_ = 0.0
    for line in text.splitlines():
        if line.startswith('emberflow_batch_size_count{model="digits/1"}'):
            count = float(line.split()[-1])
        if line.startswith('emberflow_batch_size_sum{model="digits/1"}'):
            sum_ = float(line.split()[-1])
    assert count > 0 and sum_ / count > 2, "concurrent requests should share executions (mean rows per batch > 2)"


def test_repository_unload_load_and_hot_reload(client, repo_server, engine):
    index = client.get_model_repository_index(headers=auth())
    assert {"name": "digits", "version": "1", "state": "READY", "reason": ""} in index
    client.unload_model("digits", headers=auth())
    assert not client.is_model_ready("digits", headers=auth())
    client.load_model("digits", headers=auth())
    assert client.is_model_ready("digits", headers=auth())

    repo = repo_server.repo
    add_model(repo, "digits2", 1, DIGITS)  # a new model folder appears: the poller loads it
    _wait(lambda: client.is_model_ready("digits2", headers=auth()))
    add_model(repo, "digits2", 3, DIGITS)  # a new version: requests without a version get the highest
    _wait(lambda: client.get_model_metadata("digits2", headers=auth())["versions"] == ["1", "3"])
    x = digits_inputs(2)
    inp = th.InferInput("image", [2, 1, 8, 8], "FP32")
    inp.set_data_from_numpy(x)
    r = client.infer("digits2", [inp], headers=auth())
    assert r.get_response()["model_version"] == "3"
    assert client.infer("digits2", [inp], model_version="1", headers=auth()).get_response()["model_version"] == "1"
    (repo / "digits2" / "3" / "model.onnx").write_bytes(b"not a model")  # a broken update keeps serving
    _wait(lambda: "reload failed" in str(client.get_model_repository_index(headers=auth())))
    np.testing.assert_allclose(
        client.infer("digits2", [inp], headers=auth()).as_numpy("logits"), engine([x])[0], rtol=1e-5, atol=1e-6
    )
    shutil.rmtree(repo / "digits2")  # removed from disk: unloaded
    _wait(lambda: not client.is_model_ready("digits2", headers=auth()))


def _wait(cond) -> None:
    """Until `cond()` holds; the server may refuse while it reloads the repository."""

    def holds() -> bool:
        try:
            return bool(cond())
        except InferenceServerException:
            return False

    eventually(holds, step=0.1)


def test_overload_is_refused_with_retry_after_and_nothing_hangs(repo_server):
    """More concurrent requests than the queue holds: the excess gets 429 + Retry-After at once, the
    rest complete, and every request gets an answer."""
    import json
    import threading
    import urllib.error
    import urllib.request

    x = np.random.default_rng(0).standard_normal((64, 512)).astype(np.float32)
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": [64, 512], "datatype": "FP32", "data": x.reshape(-1).tolist()}]}
    ).encode()
    url = f"http://127.0.0.1:{repo_server.http_port}/v2/models/slow/infer"
    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def call() -> None:
        req = urllib.request.Request(url, data=body, headers={**auth(), "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                outcome = (r.status, None)
        except urllib.error.HTTPError as e:
            outcome = (e.code, e.headers.get("Retry-After"))
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=call) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert len(results) == 24, "every request must get an answer"
    statuses = sorted(code for code, _ in results)
    assert set(statuses) == {200, 429}, statuses
    assert statuses.count(200) >= 3
    assert all(retry == "1" for code, retry in results if code == 429)


def test_per_request_timeout_is_504(client):
    x = np.random.default_rng(1).standard_normal((64, 512)).astype(np.float32)
    inp = th.InferInput("x", [64, 512], "FP32")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException) as e:
        client.infer("slow", [inp], timeout=1000, headers=auth())  # 1 ms budget (µs, the KServe parameter)
    assert e.value.status() == "504" and "timeout" in e.value.message()
    assert client.infer("slow", [inp], headers=auth()).as_numpy("y").shape == (64, 512)  # the default budget is fine


def test_cors_is_off(repo_server):
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{repo_server.http_port}/v2/health/live",
        method="OPTIONS",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            headers = dict(r.headers)
    except urllib.error.HTTPError as e:
        headers = dict(e.headers)
    assert not any(k.lower().startswith("access-control-allow") for k in headers)
