"""Issue 15 item 19: a `{"RAW":N}` header announcing more than max_frame is answered -2 and the
connection closed, instead of silently swallowing the next N bytes (10^12 of them, if it says so)."""

from __future__ import annotations

from hardening.wire import Wire


def test_a_raw_header_of_a_terabyte_is_answered_then_the_connection_closed(server):
    w = Wire(server.port)
    w.send(b'{"RAW":1000000000000,"request_id":"r","work_id":"sys","action":"ping"}' + b"\0" * 4096)
    msgs = w.messages_until_closed()  # before: -2, then every later byte swallowed on an open connection
    assert len(msgs) == 1 and msgs[0]["error"]["code"] == -2 and "disconnecting" in msgs[0]["data"]["detail"]


def test_the_decoder_marks_oversized_raw_frames():
    from emberflow.protocol.framing import FrameDecoder, Oversize

    d = FrameDecoder(max_frame=100)
    json_frame, raw_frame = d.feed(b'{"a":"' + b"x" * 200 + b'"}{"RAW":500}')
    assert isinstance(json_frame, Oversize) and not json_frame.raw  # resynchronises by itself: skipped
    assert isinstance(raw_frame, Oversize) and raw_frame.raw
