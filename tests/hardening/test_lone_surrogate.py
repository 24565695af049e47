"""Issue 15 item 17 (StackFlow port): a lone UTF-16 surrogate escape in a request used to become
`-2 "internal error"` (the reply could not be encoded); it is a plain JSON format error now."""

from __future__ import annotations

from hardening.wire import Wire


def test_a_lone_surrogate_is_a_json_format_error_not_an_internal_error(server):
    w = Wire(server.port)
    w.send(b'{"request_id":"\\ud800","work_id":"sys","action":"ping"}')
    msg = w.message()
    assert msg["error"]["code"] == -2 and "surrogate" in msg["data"]["detail"]
    w.send(b'{"request_id":"\\ud83d\\ude00","work_id":"sys","action":"ping"}')  # a valid pair is fine
    assert w.message()["request_id"] == "\U0001f600"
    w.send(b'{"request_id":"\\\\ud800","work_id":"sys","action":"ping"}')  # an escaped backslash: text
    assert w.message()["request_id"] == "\\ud800"


def test_surrogate_escapes_are_told_apart_from_text():
    from emberflow.protocol.framing import has_lone_surrogate

    assert has_lone_surrogate(rb'"\ud800"') and has_lone_surrogate(rb'"\udc00 "') and has_lone_surrogate(rb'"\\\ud83d"')
    assert not has_lone_surrogate(rb'"\ud83d\ude00"') and not has_lone_surrogate(rb'"\\ud800"')
