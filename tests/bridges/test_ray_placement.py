"""Unit kinds placed on a real 2-node Ray cluster on loopback (issue 13, part A).

The sys daemon (`emberflow up --ray ADDRESS`) is the front door on the head; `llm` and `relay`
run in Ray actors pinned to node B by its custom resource; `echo` stays a local process. Each
test asserts a mechanism: where the task ran (the actor's Ray node id), what crossed the links
(frame counts, order), what a client is told when node B's processes are killed (-11), and that
a new setup works once Ray has restarted the actor on a new node B.
"""

from __future__ import annotations

import os
import signal

import pytest

from bridges.ray_cluster import LOOPBACK
from emberflow.client import ServerError
from support import Server

pytestmark = pytest.mark.slow

LLM = {
    "model": "smollm2-135m-instruct",
    "response_format": "llm.utf-8.stream",
    "input": "llm.utf-8.stream",
    "enoutput": True,
    "max_token_len": 400,
    "temperature": 0.0,
    "prompt_suffix": "",
    # one thread: llama.cpp's two OpenMP threads spin at every barrier, and on two cores shared
    # with other work (CI, a busy-loop load test) each barrier waits for a time slice: the stream
    # then crawled past the test's timeouts (bench/llm_wait_policy.py measures it)
    "n_threads": 1,
}
COUNT = "Count from 1 to 200, separated by commas."


@pytest.fixture(scope="module")
def front_door(ray_cluster, tmp_path_factory):
    s = Server(
        tmp_path_factory.mktemp("ray"),
        args=["--ray", ray_cluster.address],
        config={
            "bus_host": LOOPBACK,
            "http_port": None,
            "grpc_port": None,
            "unit_heartbeat_timeout": 5.0,
            "unit_ready_timeout": 120.0,
            "restart_backoff": [0.2, 1.0],
            "units": {"echo": "units_for_tests:EchoUnit", "relay": "bridges.relay_unit:RelayUnit"},
            "placement": {
                "llm": {"backend": "ray", "resources": {"node_b": 1}, "max_restarts": -1},
                "relay": {"backend": "ray", "resources": {"node_b": 1}},
                # one embed host per node: the first setup goes to one, the next to the other
                "embed": {"backend": "ray", "replicas": 2, "resources": [{"head": 1}, {"node_b": 1}]},
            },
        },
    )
    yield s
    s.stop()


def _texts(client, work_id: str, n: int) -> list[str]:
    """The first n texts a task streamed to its owner (each ends with an empty finish chunk)."""
    texts: list[str] = []
    while len(texts) < n:
        texts += [d for m in client.outputs(work_id) if (d := m["data"]["delta"])]
    return texts


def _host(client, kind: str) -> dict:
    units = client.request("sys", "lstask")["data"]["units"]
    return next(u for u in units if u["host"] == kind)


def test_an_llm_task_on_node_b_streams_tokens_to_a_stackflow_client(front_door, ray_cluster):
    with front_door.client(timeout=120) as c:
        work_id = c.setup("llm", LLM)
        assert work_id.startswith("llm.")  # the same work ids as a local task
        rid = c.infer(work_id, "What is the capital of France?")
        messages = list(c.outputs(work_id, rid, timeout=120))
        deltas = [m["data"]["delta"] for m in messages]
        assert len(deltas) > 2 and deltas[-1] == "" and messages[-1]["data"]["finish"] is True
        assert [m["data"]["index"] for m in messages] == list(range(len(messages)))  # nothing lost or reordered
        placed = _host(c, "llm")["placement"]
        assert placed["backend"] == "ray" and placed["node_id"] == ray_cluster.node_id("node_b")
        assert placed["node_id"] != ray_cluster.node_id("head")
        c.exit(work_id)


def test_streamed_input_reaches_a_remote_task_whole_and_in_order(front_door):
    pieces = [f"p{i:02d} " for i in range(40)]
    with front_door.client() as c:
        relay = c.setup("relay", {})
        rid = "stream-in"
        for i, piece in enumerate(pieces):  # StackFlow stream chunks: index order, the last one finishes
            c.send(
                {
                    "request_id": rid,
                    "work_id": relay,
                    "action": "inference",
                    "object": "relay.utf-8.stream",
                    "data": {"delta": piece, "index": i, "finish": i == len(pieces) - 1},
                }
            )
        out = [m["data"]["delta"] for m in c.outputs(relay, rid)]
        assert out == ["".join(pieces), ""]
        c.exit(relay)


def test_links_cross_the_machine_boundary_both_ways_in_order_and_counted(front_door):
    """local echo -> relay on node B -> local echo: every frame arrives, in order, and each hop
    counts what it received."""
    n = 25
    with front_door.client() as c:
        source = c.setup("echo", {"enoutput": False})
        remote = c.setup("relay", {"input": [source]})  # local -> remote (the source's tcp address)
        back = c.setup("echo", {"input": [remote]})  # remote -> local
        for i in range(n):
            c.infer(source, f"frame {i}")
        relayed, returned = _texts(c, remote, n), _texts(c, back, n)
        assert relayed == [f"frame {i}" for i in range(n)]
        assert returned == relayed
        remote_info = c.request(remote, "taskinfo")["data"]
        back_info = c.request(back, "taskinfo")["data"]
        # every frame counted once per hop: each text crosses as a text frame and its finish frame
        assert remote_info["stats"]["inferences"] == 2 * n and back_info["stats"]["inferences"] == 2 * n
        assert remote_info["queue"]["dropped"] == {} and back_info["queue"]["dropped"] == {}
        assert remote_info["stats"]["frames_missed"] == 0 and back_info["stats"]["frames_missed"] == 0
        assert remote_info["inputs"] == [source] and back_info["inputs"] == [remote]
        # what crossed the machine boundary went over tcp: the relay's own socket, and the local
        # source's second socket (ipc stays for local readers)
        tasks = {t["work_id"]: t for t in c.request("sys", "lstask")["data"]["tasks"]}
        assert tasks[remote]["data_addr"].startswith("tcp://")
        assert tasks[source]["data_addr"].startswith("ipc://") and tasks[source]["remote_addr"].startswith("tcp://")
        for w in (back, remote, source):
            c.exit(w)


def test_two_embed_instances_on_two_nodes_both_serve(front_door, ray_cluster):
    with front_door.client(timeout=120) as c:
        tasks = [c.setup("embed", {"model": "minilm-l6-v2-int8"}) for _ in range(2)]
        vectors = {}
        for i in range(6):  # alternate between the two tasks
            work_id = tasks[i % 2]
            rid = c.infer(work_id, {"texts": [f"sentence number {i}"]}, object="embed.json")
            vectors[i] = next(c.outputs(work_id, rid))["data"]["embeddings"][0]
        assert all(len(v) == 384 for v in vectors.values())
        lstask = c.request("sys", "lstask")["data"]
        hosts = {t["work_id"]: t["host"] for t in lstask["tasks"] if t["unit"] == "embed"}
        assert sorted(hosts[w] for w in tasks) == ["embed", "embed#1"]  # one task on each replica
        nodes = {u["host"]: u["placement"]["node_id"] for u in lstask["units"] if u["kind"] == "embed"}
        assert {nodes["embed"], nodes["embed#1"]} == {ray_cluster.node_id("head"), ray_cluster.node_id("node_b")}
        served = [c.request(w, "taskinfo")["data"]["stats"]["inferences"] for w in tasks]
        assert served == [3, 3]  # each instance answered its own requests
        for w in tasks:
            c.exit(w)


def test_a_killed_actor_worker_is_noticed_by_its_closed_connection_not_by_ray(front_door, ray_cluster):
    """SIGKILL of the LLM actor's worker mid-stream: the -11 says the host's control connection
    closed (sys did not wait for Ray to report the actor lost), and a new setup works on a new
    actor (the old one is killed for good, not restarted by Ray beside it)."""
    with front_door.client(timeout=120) as c:
        work_id = c.setup("llm", LLM)
        old = _host(c, "llm")
        rid = c.infer(work_id, COUNT)
        stream = c.outputs(work_id, rid, timeout=120)
        assert next(stream)["data"]["finish"] is False  # streaming from node B
        os.kill(old["pid"], signal.SIGKILL)
        with pytest.raises(ServerError) as lost:
            for m in stream:
                assert not m["data"]["finish"], "the answer ended normally: the worker was not killed mid-stream"
        assert lost.value.code == -11
        assert "its control connection to sys closed" in lost.value.msg["data"]["detail"]
        again = c.setup("llm", {**LLM, "max_token_len": 16}, timeout=120)
        assert c.ask(again, "What is the capital of France?", timeout=120)
        new = _host(c, "llm")
        assert new["pid"] != old["pid"] and new["placement"]["node_id"] == ray_cluster.node_id("node_b")
        # a new actor: Ray's restart of the old one (max_restarts -1) would keep its actor id
        assert new["placement"]["actor_id"] != old["placement"]["actor_id"]
        hosts = [u for u in c.request("sys", "lstask")["data"]["units"] if u["kind"] == "llm"]
        assert len(hosts) == 1
        c.exit(again)


def test_node_b_lost_mid_stream_answers_the_client_then_a_new_setup_works(front_door, ray_cluster):
    """Last in the module: node B's machine goes away (every process of it SIGKILLed) while the
    LLM streams; the client gets -11 instead of hanging, and once a new node B joins, Ray restarts
    the actor there and a new setup streams again."""
    with front_door.client(timeout=120) as c:
        work_id = c.setup("llm", LLM)
        old_node = _host(c, "llm")["placement"]["node_id"]
        rid = c.infer(work_id, COUNT)
        stream = c.outputs(work_id, rid, timeout=60)
        got = [next(stream) for _ in range(3)]  # it is streaming from node B
        assert all(m["data"]["finish"] is False for m in got)
        ray_cluster.kill_node("node_b")
        with pytest.raises(ServerError) as lost:
            for m in stream:
                assert not m["data"]["finish"], "the answer ended normally: node B was not lost mid-stream"
        assert lost.value.code == -11
        detail = lost.value.msg["data"]["detail"]
        # its processes died with the machine here, so their connections closed at once
        assert "lost its Ray actor" in detail and "control connection to sys closed" in detail
        ray_cluster.add_node("node_b")  # a new machine with the resource the placement pins to
        again = c.setup("llm", {**LLM, "max_token_len": 16}, timeout=120)
        answer = c.ask(again, "What is the capital of France?", timeout=120)
        assert answer
        placed = _host(c, "llm")["placement"]
        assert placed["node_id"] == ray_cluster.node_id("node_b") != old_node
        c.exit(again)
