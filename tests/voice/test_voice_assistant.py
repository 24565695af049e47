"""StackFlow's main working mode with real models: wake word -> ASR -> LLM -> TTS -> speaker,
configured by unmodified client message sequences, over TCP and over the UART."""

from __future__ import annotations

import os
import pty
import tty

import pytest
from speech import QUESTION, utterance
from voicekit import push, read_wav, requests_of, transcribe, wait_played

from support import Server
from test_uart import Serial

pytestmark = pytest.mark.slow


def run_sequence(client, requests: list[dict]) -> dict[str, str]:
    """Send a real client's setup sequence; returns request_id -> work_id of the replies."""
    work_ids = {}
    for m in requests:
        rid = m["request_id"]
        if m["action"] == "reset":
            client.send(m)
            assert client.next_message(lambda r, rid=rid: r.get("request_id") == rid)["error"]["code"] == 0
            client.next_message(lambda r: r.get("request_id") == "0")  # reset over
            continue
        client.send(m)
        r = client.next_message(lambda r, rid=rid: r.get("request_id") == rid, timeout=120)
        assert r["error"]["code"] == 0, r
        work_ids[m["request_id"]] = r["work_id"]
    return work_ids


def converse(client) -> dict[str, list[dict]]:
    """Speak the question and collect what the server says until the LLM finishes."""
    push(client, utterance(0.5, *QUESTION))
    seen: dict[str, list[dict]] = {}
    while True:
        m = client.next_message(timeout=120)
        assert m["error"]["code"] == 0, m
        seen.setdefault(m["object"], []).append(m)
        if m["object"] == "llm.utf-8.stream" and m["data"]["finish"]:
            return seen


def check_answer(server, client, seen, ids) -> None:
    (wake, *_) = seen["kws.bool"]
    assert wake["data"] is True and wake["work_id"] == ids["kws"] and wake["request_id"] == ids["kws_rid"]
    asr = seen["asr.utf-8.stream"]
    assert all(m["work_id"] == ids["asr"] and m["request_id"] == ids["asr_rid"] for m in asr)
    assert asr[-1]["data"]["finish"] and "capital of france" in asr[-1]["data"]["delta"].lower()
    llm = seen["llm.utf-8.stream"]
    assert all(m["work_id"] == ids["llm"] and m["request_id"] == ids["llm_rid"] for m in llm)
    assert [m["data"]["index"] for m in llm] == list(range(len(llm)))
    answer = "".join(m["data"]["delta"] for m in llm)
    assert "Paris" in answer, answer
    info = wait_played(client)
    assert info["turns"] and info["turns"][-1]["end_to_end"] > 0
    # speech started from the answer's first words, while the LLM was still writing it
    first = client.request(ids["tts"], "taskinfo")["data"]["unit"]["chunks"][0]
    assert first["upstream_finished"] is False and first["words"] <= 8, first
    heard = transcribe(client, read_wav(server.answer_wav))
    assert "paris" in heard.lower(), heard


def test_arduino_voice_assistant_over_tcp(voice_server):
    c = voice_server.client(timeout=120)
    ids = run_sequence(c, requests_of("voice_assistant_arduino.requests.jsonl"))
    assert [ids[k] for k in ("audio_setup", "kws_setup", "asr_setup", "llm_setup", "tts_setup")] == [
        "audio",
        "kws.1001",
        "asr.1002",
        "llm.1003",
        "melotts.1004",
    ]  # audio consumed 1000
    seen = converse(c)
    assert "melotts" not in {m["work_id"].split(".")[0] for ms in seen.values() for m in ms}  # enoutput false
    check_answer(
        voice_server,
        c,
        seen,
        {
            "kws": "kws.1001",
            "kws_rid": "kws_setup",
            "asr": "asr.1002",
            "asr_rid": "asr_setup",
            "llm": "llm.1003",
            "llm_rid": "llm_setup",
            "tts": "melotts.1004",
        },
    )


def test_link_style_voice_assistant_over_tcp(voice_server):
    c = voice_server.client(timeout=120)
    ids = run_sequence(c, requests_of("voice_assistant_link.requests.jsonl"))
    assert [ids[k] for k in ("1", "2", "3", "4")] == ["kws.1000", "asr.1001", "llm.1002", "melotts.1003"]
    seen = converse(c)
    check_answer(
        voice_server,
        c,
        seen,
        {
            "kws": "kws.1000",
            "kws_rid": "1",
            "asr": "asr.1001",
            "asr_rid": "2",
            "llm": "llm.1002",
            "llm_rid": "3",
            "tts": "melotts.1003",
        },
    )


SEQUENCES = {
    "arduino": (
        "voice_assistant_arduino.requests.jsonl",
        {
            "kws": "kws.1001",
            "kws_rid": "kws_setup",
            "asr": "asr.1002",
            "asr_rid": "asr_setup",
            "llm": "llm.1003",
            "llm_rid": "llm_setup",
            "tts": "melotts.1004",
        },
    ),
    "link": (
        "voice_assistant_link.requests.jsonl",
        {
            "kws": "kws.1000",
            "kws_rid": "1",
            "asr": "asr.1001",
            "asr_rid": "2",
            "llm": "llm.1002",
            "llm_rid": "3",
            "tts": "melotts.1003",
        },
    ),
}


@pytest.mark.parametrize("sequence", sorted(SEQUENCES))
def test_voice_assistant_over_uart(tmp_path, sequence):
    requests, ids = SEQUENCES[sequence]
    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    answer = tmp_path / "answer.wav"
    server = Server(
        tmp_path,
        config={"uart": os.ttyname(slave), "http_port": None, "grpc_port": None, "audio": {"sink": f"file:{answer}"}},
    )
    server.answer_wav = answer
    try:
        port = Serial(master)
        assert port.recv()["error"]["message"] == "reset over"  # boot notice
        for m in requests_of(requests):
            port.send(m)
            r = port.recv(timeout=120)
            if m["action"] == "reset":
                assert port.recv(timeout=60)["error"]["message"] == "reset over"
                continue
            assert r["error"]["code"] == 0 and r["request_id"] == m["request_id"], r
        with server.client(timeout=120) as mic:  # the microphone is on the device, not on the UART
            push(mic, utterance(0.5, *QUESTION))
            seen: dict[str, list[dict]] = {}
            while not seen.get("llm.utf-8.stream") or not seen["llm.utf-8.stream"][-1]["data"]["finish"]:
                m = port.recv(timeout=120)
                seen.setdefault(m["object"], []).append(m)
            check_answer(server, mic, seen, ids)
    finally:
        server.stop()
        os.close(master)
        os.close(slave)
