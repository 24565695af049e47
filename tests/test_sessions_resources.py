"""AIGES concepts on the unit SDK: streamed-input sessions (`on_chunk`) and personalisation
resources (`load_resource`), over the real StackFlow TCP server with the `tally` test unit."""

from __future__ import annotations

import itertools
import os
import signal

import pytest
import zmq

from emberflow.client import ServerError
from emberflow.unit import IO, Chunk, Unit
from emberflow.unit.local import LocalTask
from emberflow.unit.task import Task
from support import eventually
from units_for_tests import EchoUnit, TallyUnit

OBJ = "tally.utf-8.stream"


def _chunk(c, work_id: str, text: str, index: int, last: bool, rid: str = "s1") -> None:
    c.send(
        {
            "request_id": rid,
            "work_id": work_id,
            "action": "inference",
            "object": OBJ,
            "data": {"delta": text, "index": index, "finish": last},
        }
    )


def _next_output(c, work_id: str) -> dict:
    return c.next_message(lambda m: m.get("work_id") == work_id and m.get("object") == "tally.json.stream")


def test_schema_declares_result_resource_and_streamed_input():
    s = TallyUnit.schema()
    assert s["streams_input"] is True and s["resource"] == "text"
    assert s["result"]["properties"]["words"]["minimum"] == 0
    assert {"load_resource", "unload_resource", "list_resources"} <= set(s["actions"])
    echo = EchoUnit.schema()
    assert echo["streams_input"] is False and echo["resource"] is None and echo["result"] is None
    assert "load_resource" not in echo["actions"]


def test_partial_results_arrive_while_input_still_streams(server):
    c = server.client()
    tally = c.setup("tally", {})
    _chunk(c, tally, "one two", 0, False)
    # The answer to chunk 0 arrives before chunk 1 is even sent: the unit works as input streams.
    first = _next_output(c, tally)
    assert first["data"] == {"delta": {"words": 2, "chunks": 1}, "index": 0, "finish": False}
    assert first["request_id"] == "s1"
    _chunk(c, tally, "three four five", 1, False)
    assert _next_output(c, tally)["data"]["delta"] == {"words": 5, "chunks": 2}
    _chunk(c, tally, "six", 2, True)
    last = _next_output(c, tally)
    assert last["data"] == {"delta": {"words": 6, "chunks": 3}, "index": 2, "finish": True}
    # A second stream on the same task starts from zero (chunk.first) and indexes from 0 again.
    _chunk(c, tally, "alpha", 0, True, rid="s2")
    again = _next_output(c, tally)
    assert again["data"] == {"delta": {"words": 1, "chunks": 1}, "index": 0, "finish": True}
    assert again["request_id"] == "s2"
    c.exit(tally)


def test_whole_format_answers_once_at_the_end_and_index_errors_reset(server):
    c = server.client()
    tally = c.setup("tally", {"response_format": "tally.json"})
    _chunk(c, tally, "a b", 0, False)
    _chunk(c, tally, "c", 1, True)
    answer = c.next_message(lambda m: m.get("work_id") == tally and m.get("object") == "tally.json")
    assert answer["data"] == {"words": 3, "chunks": 2}  # the Final value, not the partials
    _chunk(c, tally, "x", 0, False)
    _chunk(c, tally, "y", 5, False)  # a gap: -25, and the stream starts over
    err = c.next_message(lambda m: m["error"]["code"] == -25)
    assert "expected index 1" in err["data"]["detail"]
    _chunk(c, tally, "z", 0, True)
    answer = c.next_message(lambda m: m.get("work_id") == tally and m.get("object") == "tally.json")
    assert answer["data"] == {"words": 1, "chunks": 1}
    c.exit(tally)


def test_resources_load_use_replace_unload(server):
    c = server.client()
    tally = c.setup("tally", {"stopwords": "en", "response_format": "tally.json"})
    c.infer(tally, "the cat", object="tally.utf-8")  # not loaded yet: a clear error naming the fix
    err = c.next_message(lambda m: m["error"]["code"] != 0)
    assert err["error"]["code"] == -22
    assert "'en' is not loaded" in err["data"]["detail"] and "load_resource" in err["data"]["detail"]

    ok = c.request("tally", "load_resource", "tally.resource", {"id": "en", "data": "the a of"})
    assert ok["data"] == {"id": "en"} and ok["work_id"] == "tally"
    assert c.request("tally", "list_resources")["data"] == ["en"]
    c.infer(tally, "the cat of the house", object="tally.utf-8")
    answer = c.next_message(lambda m: m.get("work_id") == tally and m.get("object") == "tally.json")
    assert answer["data"] == {"words": 2, "chunks": 1}

    c.request("tally", "load_resource", "tally.resource", {"id": "en", "data": "cat house"})  # replaces
    c.infer(tally, "the cat of the house", object="tally.utf-8")
    answer = c.next_message(lambda m: m.get("work_id") == tally and m.get("object") == "tally.json")
    assert answer["data"]["words"] == 3

    c.request("tally", "unload_resource", "tally.resource", {"id": "en"})
    assert c.request("tally", "list_resources")["data"] == []
    c.exit(tally)


def test_resource_errors(server):
    c = server.client()
    for data, code, text in [
        ({"id": "x", "data": "   "}, -22, "is empty"),  # the unit refused it
        ({"data": "a"}, -22, '{"id"'),
        ({"id": "x"}, -24, "missing"),
        ({"id": "x", "data": {"not": "text"}}, -22, "must be a string"),
    ]:
        with pytest.raises(ServerError) as e:
            c.request("tally", "load_resource", "tally.resource", data)
        assert e.value.code == code and text in e.value.msg["data"]["detail"], e.value.msg
    with pytest.raises(ServerError) as e:
        c.request("tally", "unload_resource", "tally.resource", {"id": "never-loaded"})
    assert e.value.code == -22
    with pytest.raises(ServerError) as e:
        c.request("echo", "load_resource", "echo.resource", {"id": "x", "data": "a"})
    assert e.value.code == -18 and "takes no resources" in e.value.msg["data"]["detail"]


@pytest.mark.slow
def test_resources_survive_a_unit_crash(fresh_server):
    c = fresh_server.client()
    c.request("tally", "load_resource", "tally.resource", {"id": "en", "data": "the"})
    os.kill(fresh_server.unit_pid("tally"), signal.SIGKILL)

    def listed() -> list | None:  # the supervisor restarts the process and sys loads the resource again
        try:
            return c.request("tally", "list_resources", timeout=5)["data"]
        except (ServerError, TimeoutError):
            return None  # the process is down (-9) until the supervisor notices and restarts it

    # never an empty list: requests wait until resources are back
    got = eventually(lambda: (v := listed()) is not None and (v,), lambda: "the unit never came back")
    assert got == (["en"],)
    tally = c.setup("tally", {"stopwords": "en", "response_format": "tally.json"})
    c.infer(tally, "the end", object="tally.utf-8")
    assert c.next_message(lambda m: m.get("work_id") == tally)["data"] == {"words": 1, "chunks": 1}
    c.request("sys", "reset")  # reset forgets resources: a fresh process has none
    assert eventually(lambda: (v := listed()) is not None and (v,), step=0.2) == ([],)


def test_local_task_sessions_and_resources():
    with LocalTask(TallyUnit, {"stopwords": "en"}) as task:
        task.load_resource("en", "the")
        steps = task.session(["the cat", "sat on the", "mat"])
        assert [s[-1].value if hasattr(s[-1], "value") else s[-1] for s in steps] == [
            {"words": 1, "chunks": 1},
            {"words": 3, "chunks": 2},
            {"words": 4, "chunks": 3},
        ]
        task.unload_resource("en")
        assert task.resources == {}
    with LocalTask(EchoUnit, {}) as echo:  # no on_chunk: one infer on the joined input at the end
        assert echo.session(["a", "b"]) == [[], ["ab"]]


class _Bytes(Unit):
    kind = "bytes"
    needs_model = False
    inputs = {"blob": IO.IMAGE}

    def on_chunk(self, chunk: Chunk) -> bytes:
        return chunk.data


def test_base64_chunks_may_be_split_anywhere():
    """Clients cut a base64 text at any length; a chunk's partial 4-character quantum waits."""
    import base64

    from emberflow.unit.base import UnitParams

    blob = bytes(range(256)) * 3
    text = base64.b64encode(blob).decode()
    ctx = zmq.Context()
    unit = _Bytes()
    task = Task(unit, UnitParams(), "bytes.1", data_addr="inproc://unused", setup_request_id="0", ctx=ctx, model=None)
    got, cuts = b"", [0, 5, 6, 77, 500, len(text)]
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        chunk = task.input.feed("bytes.base64.stream", {"delta": text[a:b], "index": i, "finish": b == len(text)}, None)
        assert isinstance(chunk, Chunk) and chunk.index == i
        got += chunk.data
    assert got == blob
    ctx.term()
