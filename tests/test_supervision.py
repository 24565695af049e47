"""Supervision: a unit process killed with SIGKILL never wedges sys or other clients."""

from __future__ import annotations

import os
import signal
import time

import pytest

from emberflow.client import ServerError

pytestmark = pytest.mark.slow


def test_sigkill_mid_generation(fresh_server, llm_params):
    c = fresh_server.client(timeout=30)
    llm = c.setup("llm", {**llm_params, "max_token_len": 1000, "prompt": "Tell very long stories."})
    rid = c.infer(llm, "Tell me a long story about a dragon and a castle, with many details.")
    first = c.next_message(lambda m: m.get("request_id") == rid)
    assert first["error"]["code"] == 0  # generation is under way
    os.kill(fresh_server.unit_pid("llm"), signal.SIGKILL)
    # the client hears about it instead of hanging
    died = c.next_message(lambda m: m.get("request_id") == rid and m["error"]["code"] != 0, timeout=10)
    assert died["error"]["code"] == -11 and died["work_id"] == llm
    assert "gone" in died["data"]["detail"]
    c.ping()  # sys is alive
    with pytest.raises(ServerError) as e:
        c.request(llm, "taskinfo")
    assert e.value.code == -6
    llm2 = c.setup("llm", llm_params)  # waits for the restarted process (readiness-gated)
    units = {u["kind"]: u for u in c.request("sys", "lstask")["data"]["units"]}
    assert units["llm"]["crashes_last_minute"] == 1 and units["llm"]["state"] == "ready"  # restarted once, at once
    assert c.ask(llm2, "Say hi.")


def test_kill_while_setup_pending_answers_the_setup(fresh_server, llm_params):
    c = fresh_server.client(timeout=30)
    c.setup("echo", {})  # start the echo process
    pid = fresh_server.unit_pid("echo")
    os.kill(pid, signal.SIGSTOP)  # freeze it so the next setup stays pending
    rid = "pending-setup"
    c.send({"request_id": rid, "work_id": "echo", "action": "setup", "object": "echo.setup", "data": {}})
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    reply = c.next_message(lambda m: m.get("request_id") == rid, timeout=10)
    assert reply["error"]["code"] == -5 and reply["work_id"] == "echo"
    c.ping()


def test_crash_loop_backs_off_and_other_units_keep_working(fresh_server, llm_params):
    c = fresh_server.client(timeout=30)
    echo = c.setup("echo", {})
    for _ in range(3):
        os.kill(fresh_server.unit_pid("echo"), signal.SIGKILL)
        time.sleep(0.2)
        with pytest.raises((ServerError, TimeoutError)):
            c.request(echo, "taskinfo", timeout=5)
        # a new setup waits for the restarted process (readiness-gated) and then works
        echo = c.setup("echo", {}, timeout=30)
    units = {u["kind"]: u for u in c.request("sys", "lstask")["data"]["units"]}
    assert units["echo"]["crashes_last_minute"] >= 3
    assert c.ask(echo, "still here") == "still here"
