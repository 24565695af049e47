"""Flow files: validation, `emberflow up FLOW`, and `emberflow demo voice` end to end."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from speech import QUESTION, utterance
from voicekit import push, read_wav, transcribe

from emberflow.flows.spec import BUILTIN, FlowError, load
from emberflow.unit.registry import known_units
from emberflow.voice import pcm
from support import Server, eventually


def write(tmp_path, text: str):
    p = tmp_path / "flow.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "body, message",
    [
        ("units: {a: {unit: nosuch}}", "unknown unit kind 'nosuch'"),
        ("units: {a: {unit: echo, inputs: [b]}}", "names 'b', which is not a unit"),
        ("units: {a: {unit: echo, inputs: [b]}, b: {unit: echo, inputs: [a]}}", "cycle"),
        ("units: {a: {unit: echo, inputs: [{from: b, policy: sometimes}]}, b: {unit: echo}}", "policy 'sometimes'"),
        ("units: {}", "non-empty 'units'"),
    ],
)
def test_invalid_flows_say_what_to_fix(tmp_path, body, message):
    with pytest.raises(FlowError, match=message):
        load(write(tmp_path, body), set(known_units({"echo": "x:y"})))


def test_shipped_flows_are_valid_and_ordered():
    names = {p.stem: load(p, set(known_units())) for p in BUILTIN.glob("*.yaml")}
    assert set(names) >= {"voice-assistant", "transcribe"}
    order = [u.name for u in names["voice-assistant"].order()]
    assert order.index("audio") < order.index("kws") < order.index("asr") < order.index("llm") < order.index("tts")
    asr = names["voice-assistant"].units["asr"]
    assert [(link.source, link.policy) for link in asr.inputs] == [("audio", "lossless"), ("kws", "lossless")]


@pytest.mark.slow
def test_up_with_the_transcribe_flow_prints_what_it_hears(tmp_path):
    server = Server(tmp_path, config={"http_port": None, "grpc_port": None}, args=[str(BUILTIN / "transcribe.yaml")])
    try:
        eventually(lambda: any("flow transcribe running" in line for line in server.log), lambda: "".join(server.log))
        with server.client(timeout=60) as mic:
            push(mic, utterance(0.3, "The weather is lovely today.", 1.2))
        eventually(lambda: any(line.startswith("heard:") for line in server.log), lambda: "".join(server.log))
        heard = next(line for line in server.log if line.startswith("heard:"))
        assert "weather" in heard.lower()
    finally:
        server.stop()


@pytest.mark.slow
def test_demo_voice_on_a_recording(tmp_path):
    question, answer = tmp_path / "question.wav", tmp_path / "answer.wav"
    question.write_bytes(pcm.to_wav(utterance(0.5, *QUESTION)))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "emberflow",
            "demo",
            "voice",
            "--input",
            str(question),
            "--output",
            str(answer),
            "--speed",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "capital of france" in r.stdout.lower() and "Paris" in r.stdout
    assert "end of speech -> first answer audio" in r.stdout
    (tmp_path / "check").mkdir()
    checker = Server(tmp_path / "check", config={"http_port": None, "grpc_port": None})
    try:
        with checker.client(timeout=120) as c:  # the written answer, heard back by the ASR unit
            assert "paris" in transcribe(c, read_wav(answer)).lower()
    finally:
        checker.stop()


@pytest.mark.slow
def test_demo_voice_without_microphone_or_input_says_so():
    r = subprocess.run([sys.executable, "-m", "emberflow", "demo", "voice"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "No microphone" in r.stdout and "--input" in r.stdout


@pytest.mark.slow
def test_voice_assistant_flow_answers_a_hesitant_question_once(voice_server):
    """ "Hey Jarvis. What is the capital of ... France?" through the shipped flow (semantic end of
    turn): one question reaches the LLM, not "What is the capital of?" and then "France?"."""
    from speech import hesitation, silence

    from emberflow.flows import runner
    from emberflow.flows.demo import audio_info, wait_played

    c = voice_server.client(timeout=180)
    ids = runner.start(
        c, load("voice-assistant"), overrides={"audio": {"source": "push", "sink": f"file:{voice_server.answer_wav}"}}
    )
    question = hesitation("What is the capital of France?", 5, 0.5)
    before = audio_info(c)
    push(c, np.concatenate([utterance(0.5, "Hey Jarvis.", 0.6), question, silence(1.5)]), speed=1.0)
    wait_played(c, timeout=120, since=before)
    asr = c.request(ids["asr"], "taskinfo")["data"]["unit"]
    assert len(asr["recent"]) == 1 and "capital of" in asr["recent"][0].lower(), asr["recent"]
    # one turn ended (how depends on this machine's speed: the verdicts themselves are checked in
    # test_turn_taking.py, where background work settles); the turn model was asked at both pauses
    assert sum(asr["turns_ended_by"].values()) == 1 and asr["turn_verdicts"]["asked"] >= 2, asr
    llm = c.request(ids["llm"], "taskinfo")["data"]["unit"]
    assert len([n for n in llm["generated_tokens"] if n]) == 2  # the warm-up "Hi", then one answer
