"""The unit SDK as users meet it: schema, in-process runs, links, system frames, queue policy."""

from __future__ import annotations

import pytest

from emberflow.bus.queue import LinkQueue
from emberflow.client import ServerError
from emberflow.unit.local import LocalTask
from emberflow.unit.registry import load_unit_class
from emberflow.units.llm import LLMUnit
from units_for_tests import EchoUnit


def test_schema_is_introspectable():
    s = EchoUnit.schema()
    assert s["kind"] == "echo" and s["inputs"] == {"text": "text"} and s["outputs"] == {"text": "text.stream"}
    times = s["params"]["properties"]["times"]
    assert (times["minimum"], times["maximum"], times["default"]) == (1, 10, 1)
    assert "work" not in s["actions"]  # echo does not implement resume()
    llm = LLMUnit.schema()
    assert llm["max_tasks"] == 2
    assert llm["params"]["properties"]["response_format"]["enum"] == ["llm.utf-8", "llm.utf-8.stream"]


def test_registry_errors_tell_what_to_write():
    with pytest.raises(TypeError, match="set `kind = 'other'`"):
        load_unit_class("other", "units_for_tests:EchoUnit")
    with pytest.raises(TypeError, match="is not a Unit subclass"):
        load_unit_class("echo", "units_for_tests:EchoParams")


def test_local_task_runs_the_real_llm_with_context():
    with LocalTask(
        LLMUnit, {"model": "smollm2-135m-instruct", "temperature": 0, "max_token_len": 40, "context": True}
    ) as task:
        assert "Paris" in task.infer_text("What is the capital of France?")
        assert len(task.unit.history) == 2
        assert task.infer_text("reset") == "Context has been reset."
        assert task.unit.history == []


def test_local_task_validates_params_like_setup():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        LocalTask(EchoUnit, {"times": 99})


def test_bad_params_get_a_clear_setup_error(server):
    c = server.client()
    with pytest.raises(ServerError) as e:
        c.setup("echo", {"times": 99})
    assert e.value.code == -5 and "times" in e.value.msg["data"]["detail"]
    with pytest.raises(ServerError) as e:
        c.setup("llm", {"model": "no-such-model"})
    assert e.value.code == -5 and "smollm2-135m-instruct" in e.value.msg["data"]["detail"]
    with pytest.raises(ServerError) as e:
        c.setup("llm", {"model": "smollm2-135m-instruct", "temperature": "hot"})
    assert e.value.code == -5 and "temperature" in e.value.msg["data"]["detail"]


def test_unit_exception_becomes_model_run_failed_and_task_survives(server):
    c = server.client()
    echo = c.setup("echo", {"fail_on": "boom"})
    rid = c.infer(echo, "boom")
    err = c.next_message(lambda m: m["work_id"] == "echo" and m["error"]["code"] != 0)
    assert err["error"] == {"code": -11, "message": "Model run failed."}
    assert "asked to fail" in err["data"]["detail"]
    assert c.ask(echo, "fine") == "fine"
    del rid
    c.exit(echo)


def test_stream_input_chunks_and_index_errors(server):
    c = server.client()
    echo = c.setup("echo", {})
    obj = "echo.utf-8.stream"
    for i, part in enumerate(["Hel", "lo"]):
        c.send(
            {
                "request_id": "chunks",
                "work_id": echo,
                "action": "inference",
                "object": obj,
                "data": {"delta": part, "index": i, "finish": i == 1},
            }
        )
    assert [m["data"]["delta"] for m in c.outputs(echo, "chunks")] == ["Hello", ""]
    c.request(echo, "taskinfo", request_id="last-control")
    c.send(
        {
            "request_id": "bad",
            "work_id": echo,
            "action": "inference",
            "object": obj,
            "data": {"delta": "x", "index": 3, "finish": True},
        }
    )
    err = c.next_message(lambda m: m["error"]["code"] == -25)
    assert (err["work_id"], err["request_id"]) == ("echo", "last-control")  # StackFlow §3.4
    c.send(
        {"request_id": "b64", "work_id": echo, "action": "inference", "object": "echo.base64", "data": "%%% not base64"}
    )
    assert c.next_message(lambda m: m["error"]["code"] == -23)["work_id"] == "echo"
    c.exit(echo)


def test_raw_binary_frame_reaches_the_unit_without_base64(server):
    import json
    import socket

    c = server.client()
    echo = c.setup("echo", {})
    s = socket.create_connection((server.host, server.port))
    s.sendall(json.dumps({"request_id": "r", "work_id": echo, "action": "taskinfo"}).encode())
    payload = "héllo {raw}".encode()
    header = json.dumps(
        {"RAW": len(payload), "request_id": "raw", "work_id": echo, "action": "inference", "object": "echo.utf-8"},
        separators=(",", ":"),
    ).encode()
    s.sendall(header + payload + b"\n")
    buf = b""
    while buf.count(b"\n") < 3:
        buf += s.recv(4096)
    msgs = [json.loads(x) for x in buf.splitlines()]
    assert msgs[1]["data"]["delta"] == "héllo {raw}"


def test_link_pipes_output_between_tasks_and_records_latency(server):
    c = server.client()
    first = c.setup("echo", {"times": 1})
    second = c.setup("echo", {"times": 2, "input": [first]})  # subscribe via setup input
    third = c.setup("echo", {"times": 1})
    c.request(third, "link", "work_id", second)  # and via link
    rid = c.infer(first, "relay")
    assert [m["data"]["delta"] for m in c.outputs(first, rid)] == ["relay", ""]
    out2 = [m["data"]["delta"] for m in c.outputs(second)]
    assert out2 == ["relay", "relay", ""]
    # third joined second's increments ("relay" + "relay") into one text
    assert [m["data"]["delta"] for m in c.outputs(third)] == ["relayrelay", ""]
    info = c.request(third, "taskinfo")["data"]
    assert info["inputs"] == [second] and info["stats"]["inferences"] == 3  # one per upstream frame
    c.request(third, "unlink", "work_id", second)
    assert c.request(third, "taskinfo")["data"]["inputs"] == []
    for w in (first, second, third):
        c.exit(w)


def ticker_feeding_echo(c, delay: float) -> tuple[str, str]:
    """A ticker whose ticks are system frames (like a wake word), and a slow echo listening to it."""
    ticker = c.setup("ticker", {"system": True, "enoutput": False})
    return ticker, c.setup("echo", {"times": 10, "delay": delay, "input": [ticker]})


def test_system_frame_interrupts_downstream_work(server):
    c = server.client()
    ticker, slow = ticker_feeding_echo(c, delay=0.2)
    rid = c.infer(slow, "long job")
    first = c.next_message(lambda m: m.get("request_id") == rid)
    assert first["data"]["delta"] == "long job"
    c.infer(ticker, "wake!", object="ticker.utf-8")
    rest = list(c.outputs(slow, rid))
    assert rest[-1]["data"]["finish"] is True
    assert len(rest) <= 3  # stopped at the next piece, not after all ten
    info = c.request(slow, "taskinfo")["data"]["stats"]
    assert info["aborted"] == 1
    for w in (ticker, slow):
        c.exit(w)


def test_pause_aborts_at_once_and_llm_has_no_work_action(server, llm_params):
    c = server.client()
    llm = c.setup("llm", {**llm_params, "max_token_len": 400, "prompt": "Tell long stories."})
    rid = c.infer(llm, "Tell me a very long story about the sea.")
    c.next_message(lambda m: m.get("request_id") == rid)
    c.request(llm, "pause")
    rest = list(c.outputs(llm, rid))
    # at most the token being decoded when the pause landed, then the finish chunk
    assert rest[-1]["data"]["finish"] is True and len(rest) <= 3
    assert c.request(llm, "taskinfo")["data"]["stats"]["aborted"] == 1
    with pytest.raises(ServerError) as e:
        c.request(llm, "work")
    assert e.value.code == -18
    assert "Paris" in c.ask(llm, "What is the capital of France?")
    c.exit(llm)


def test_latest_policy_conflates_per_link_and_counts_drops():
    q = LinkQueue(maxsize=2)
    for i in range(5):
        q.put(("cam", i), latest_key="camera.1")
    q.put("a")
    q.put("b")
    assert not q.put("c", timeout=0.05)  # lossless and full: the producer is held back, nothing lost
    q.put("wake", system=True)
    assert [q.get(0) for _ in range(4)] == ["wake", ("cam", 4), "a", "b"]
    assert q.stats()["dropped"] == {"camera.1": 4}
    q.put("x")
    assert q.flush() == 1 and q.stats()["flushed"] == 1


def test_pause_stops_only_the_running_request(server):
    c = server.client()
    echo = c.setup("echo", {"times": 10, "delay": 0.1})
    first = c.infer(echo, "first")
    second = c.infer(echo, "second")  # queued behind the first
    c.next_message(lambda m: m.get("request_id") == first)
    c.request(echo, "pause")
    assert len(list(c.outputs(echo, first))) <= 3  # cut short
    assert [m["data"]["delta"] for m in c.outputs(echo, second)] == ["second"] * 10 + [""]  # still runs
    c.exit(echo)


def test_a_wake_cancels_queued_requests_but_answers_each(server):
    c = server.client()
    ticker, echo = ticker_feeding_echo(c, delay=0.1)
    first = c.infer(echo, "first")
    second = c.infer(echo, "second")
    c.next_message(lambda m: m.get("request_id") == first)
    c.infer(ticker, "wake", object="ticker.utf-8")
    assert list(c.outputs(echo, first))[-1]["data"]["finish"] is True
    # the queued request is not run, but its caller is not left waiting either
    assert [m["data"] for m in c.outputs(echo, second, timeout=10)] == [{"delta": "", "index": 0, "finish": True}]
    for w in (ticker, echo):
        c.exit(w)
