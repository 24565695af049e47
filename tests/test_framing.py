"""Inbound framing: everything real clients send, and what the original server gets wrong."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from emberflow.protocol.envelope import encode
from emberflow.protocol.framing import Frame, FrameDecoder, Malformed, Oversize, StrayBrace


def frames(events):
    return [json.loads(e.text) for e in events if isinstance(e, Frame)]


def json_frames(events):
    """The frames that are JSON; random bytes also make brace-balanced frames that are not (the
    server answers those with -2)."""
    out = []
    for e in events:
        if isinstance(e, Frame):
            try:
                out.append(json.loads(e.text.decode("utf-8")))
            except ValueError:
                pass
    return out


def test_with_and_without_newlines_and_junk():
    d = FrameDecoder()
    ev = d.feed(b'\r\n  {"a":1}{"b":2}\n\njunk {"c":3}')
    assert frames(ev) == [{"a": 1}, {"b": 2}, {"c": 3}]
    assert d.buffered == 0


def test_braces_inside_strings_do_not_break_framing():
    d = FrameDecoder()
    msgs = [{"prompt": "use } and { freely }}}"}, {"x": '\\"{'}, {"y": "a\\\\"}]
    wire = b"".join(json.dumps(m).encode() for m in msgs)
    assert frames(d.feed(wire)) == msgs


def test_split_across_reads_byte_by_byte():
    d = FrameDecoder()
    wire = b'{"request_id":"1","data":"x\\"}{"}\n{"n":2}'
    out = []
    for i in range(len(wire)):
        out += d.feed(wire[i : i + 1])
    assert frames(out) == [{"request_id": "1", "data": 'x"}{'}, {"n": 2}]


def test_stray_brace_reports_reset_and_recovers():
    d = FrameDecoder()
    ev = d.feed(b'}{"a":1}')
    assert isinstance(ev[0], StrayBrace) and frames(ev) == [{"a": 1}]


def test_raw_frame_carries_binary_payload():
    d = FrameDecoder()
    payload = bytes(range(256)) * 3 + b'{}}"\n'
    header = json.dumps({"RAW": len(payload), "request_id": "r"}, separators=(",", ":")).encode()
    ev = d.feed(header + payload[:100])
    assert ev == []
    ev = d.feed(payload[100:] + b'\n{"next":1}')
    assert ev[0].payload == payload and json.loads(ev[0].text)["request_id"] == "r"
    assert frames(ev[1:]) == [{"next": 1}]


def test_oversized_frame_is_skipped_and_stream_stays_in_sync():
    d = FrameDecoder(max_frame=1000)
    big = b'{"data":"' + b"x" * 5000 + b'"}'
    out = []
    for i in range(0, len(big), 700):
        out += d.feed(big[i : i + 700])
    out += d.feed(b'{"ok":1}')
    assert isinstance(out[0], Oversize) and out[0].size == len(big)
    assert frames(out) == [{"ok": 1}]
    assert d.buffered == 0


def test_oversized_raw_payload_is_skipped():
    d = FrameDecoder(max_frame=100)
    ev = d.feed(b'{"RAW":500}' + b"\x00" * 500 + b'{"ok":1}')
    assert isinstance(ev[0], Oversize) and frames(ev) == [{"ok": 1}]


def test_raw_newline_inside_string_resyncs_at_next_object():
    d = FrameDecoder()
    ev = d.feed(b'{"a":"unterminated\n{"b":1}')
    assert isinstance(ev[0], Malformed)
    assert frames(ev) == [{"b": 1}]


def test_encode_is_compact_sorted_utf8_newline_terminated():
    wire = encode({"work_id": "sys", "data": "héllo", "created": 1})
    assert wire == '{"created":1,"data":"héllo","work_id":"sys"}\n'.encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=5), min_size=1, max_size=5),
    st.lists(st.integers(min_value=1, max_value=50), max_size=20),
    st.sampled_from([b"", b"\n", b"\r\n", b" junk "]),
)
def test_any_json_objects_survive_any_split(objs, cuts, sep):
    wire = sep.join(json.dumps(o, ensure_ascii=False).encode() for o in objs)
    d = FrameDecoder()
    out, pos = [], 0
    for c in cuts:
        out += d.feed(wire[pos : pos + c])
        pos += c
    out += d.feed(wire[pos:])
    assert frames(out) == objs


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash_and_never_hold_more_than_the_limit(data):
    d = FrameDecoder(max_frame=512)
    for i in range(0, len(data), 97):
        d.feed(data[i : i + 97])
    assert d.buffered <= 512 + 97
    # whatever came before, a well-formed request afterwards is framed once the junk is closed
    out = d.feed(b'"}}}}\n' * 3 + b'{"after":true}')
    assert {"after": True} in json_frames(out) or d.buffered > 0


def test_non_json_frames_from_random_bytes_are_framed_not_fatal():
    """Found by hypothesis in a clean clone: balanced garbage frames through as bytes, and the
    next real request still frames cleanly after it."""
    d = FrameDecoder(max_frame=512)
    out = d.feed(b'{\x80}{\x00}\x00{"a"}' + b'{"after":true}')
    assert [e.text for e in out if isinstance(e, Frame)] == [b"{\x80}", b"{\x00}", b'{"a"}', b'{"after":true}']
    assert json_frames(out) == [{"after": True}]
