"""Every control message survives the wire: encode then decode gives it back, binary parts raw."""

from __future__ import annotations

import pytest

from emberflow.bus import control
from emberflow.protocol.envelope import Request, reply
from emberflow.protocol.errors import Reason

REQ = Request(
    "r1",
    "llm.1000",
    "inference",
    "llm.utf-8.stream",
    {"delta": "hi", "index": 0, "finish": True},
    None,
    {"policy": "latest"},
)
RAW = Request("r2", "asr.1001", "inference", "asr.pcm", "None", bytes(range(256)) * 4)
OK = reply("r1", "llm.1000")

EXAMPLES: list[control.Message] = [
    control.Setup(
        Request("s1", "llm", "setup", "llm.setup", {"model": "m", "input": ["audio"]}),
        8000,
        "llm.1000",
        {"audio": "ipc:///tmp/x/audio.pub"},
        {"audio": "latest"},
        ["audio"],
    ),
    control.Action(
        Request("a1", "llm.1000", "link", "work_id", "kws.1001"), 8000, "ipc:///tmp/x/kws.pub", "latest", True
    ),
    control.Action(Request("a2", "tally", "load_resource", "tally.resource", {"id": "en"}, b"\x00\xffbinary"), 8001),
    control.Inference(REQ, 8000, [("tcp.recv", 12.5), ("llm.1000.start", 12.6)]),
    control.Inference(RAW, 8002),
    control.Cancel("llm.1000", 8000, "r1"),
    control.Shutdown(),
    control.Ready("llm", 4242, {"kind": "llm", "singleton": False}),
    control.Heartbeat(["llm.1000", "llm.1001"]),
    control.Answer(8000, OK),
    control.Answer(8000, reply("r1", "tally", code=-22, message="Parameter format error."), Reason.NOT_FOUND),
    control.TaskCreated(8000, OK, "llm.1000", "ipc:///tmp/x/llm.1000.pub", "smollm2-135m-instruct"),
    control.TaskCreated(8000, OK, "echo.1002", "ipc:///tmp/x/echo.1002.pub", None),
    control.TaskCreated(8000, OK, "echo.1003", "ipc:///tmp/x/echo.1003.pub", None, "tcp://10.0.0.2:40001"),
    control.SetupFailed(8000, reply("s1", "llm", code=-5, message="Model loading failed."), "llm.1003"),
    control.TaskReleased(8000, OK, "llm.1000"),
    control.Linked(8000, OK, "llm.1000", "kws.1001", True),
    control.ResourceChanged(8000, OK, "en", False),
    control.Output("llm.1000", 8000, "r1", "llm.utf-8.stream", {"delta": "Par", "index": 0, "finish": False}),
    control.Output("tts.1004", control.NO_CONN, "r9", "tts.pcm", None, b"\x01\x02" * 1000),
    control.Output("tts.1004", 8000, "r9", "tts.pcm.stream", {"delta": "", "index": 3, "finish": False}, b"\x7f" * 9),
    control.Failed("llm.1000", 8000, "r1", reply("s1", "llm", code=-21, message="task full"), Reason.QUEUE_FULL),
    control.Done("llm.1000", 8000, "r1"),
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    parts = control.encode(msg)
    assert control.decode(parts) == msg
    assert all(isinstance(p, bytes) for p in parts)


def test_every_message_type_is_covered():
    assert {type(m) for m in EXAMPLES} == set(control.Message.registry.values())


def test_binary_travels_raw_in_its_own_part():
    for msg, blob in [
        (control.Inference(RAW, 8002), RAW.payload),
        (control.Output("tts.1", 1, "r", "tts.pcm", None, b"\x00pcm"), b"\x00pcm"),
    ]:
        header, binary = control.encode(msg)
        assert binary == blob and b"base64" not in header and blob not in header


def test_client_data_puts_the_payload_where_the_client_sees_it():
    chunk = control.Output("t.1", 1, "r", "t.pcm.stream", {"delta": "", "index": 2, "finish": False}, b"ab")
    assert chunk.client_data() == {"delta": b"ab", "index": 2, "finish": False}
    assert control.Output("t.1", 1, "r", "t.pcm", None, b"ab").client_data() == b"ab"
    assert control.Output("t.1", 1, "r", "t.utf-8", "text").client_data() == "text"


@pytest.mark.parametrize("parts", [[b"not json"], [b'{"type": "Nope"}'], [b'{"type": "Done", "conn": 1}'], []])
def test_garbage_is_a_control_error(parts):
    with pytest.raises(control.ControlError):
        control.decode(parts)
