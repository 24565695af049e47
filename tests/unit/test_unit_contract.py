"""The unit contract, written once: input assembly and output shaping, and the in-process runner
that uses them exactly as the unit host does."""

from __future__ import annotations

import base64

import pytest

from emberflow.protocol.errors import Code, StackFlowError
from emberflow.testing import Final, LocalTask, stackflow_replies
from emberflow.unit import IO, Chunk, Unit, UnitParams
from emberflow.unit.inputs import INCOMPLETE, InputAssembler, fit_kind
from emberflow.unit.outputs import ChunkShaper, Out, cancelled, shape


# --- inputs ---------------------------------------------------------------------------------------
def chunk(delta, index, finish=False):
    return {"delta": delta, "index": index, "finish": finish}


def test_whole_messages_decode_raw_base64_and_json():
    a = InputAssembler("x", [IO.AUDIO_PCM], streams_input=False)
    assert a.feed("x.pcm", "None", b"\x01\x02") == b"\x01\x02"
    assert a.feed("x.base64", base64.b64encode(b"pcm").decode(), None) == b"pcm"
    with pytest.raises(StackFlowError) as e:
        a.feed("x.base64", "***", None)
    assert e.value.code == Code.BASE64


def test_streamed_pieces_are_joined_for_infer_and_indexes_checked():
    a = InputAssembler("x", [IO.TEXT], streams_input=False)
    assert a.feed("x.utf-8.stream", chunk("ab", 0), None) is INCOMPLETE
    assert a.feed("x.utf-8.stream", chunk("cd", 1, True), None) == "abcd"
    with pytest.raises(StackFlowError) as e:
        a.feed("x.utf-8.stream", chunk("zz", 3), None)
    assert e.value.code == Code.STREAM_INDEX and "expected index 0, got 3" in e.value.detail
    assert a.feed("x.utf-8.stream", chunk("ok", 0, True), None) == "ok"  # the stream started anew


def test_base64_cut_mid_quantum_is_carried_to_the_next_chunk():
    text = base64.b64encode(bytes(range(200))).decode()
    a = InputAssembler("x", [IO.AUDIO_PCM], streams_input=True)
    pieces = [text[:7], text[7:101], text[101:]]
    got = [a.feed("x.wav.stream.base64", chunk(p, i, i == 2), None) for i, p in enumerate(pieces)]
    assert all(isinstance(c, Chunk) for c in got) and [c.last for c in got] == [False, False, True]
    assert b"".join(c.data for c in got) == bytes(range(200))


def test_index_zero_restarts_a_streamed_input_for_on_chunk_units():
    a = InputAssembler("x", [IO.TEXT], streams_input=True)
    a.feed("x.utf-8.stream", chunk("a", 0), None)
    again = a.feed("x.utf-8.stream", chunk("b", 0), None)
    assert again == Chunk("b", 0, False)


def test_kinds_are_fitted_or_refused_clearly():
    assert fit_kind(b"caf\xc3\xa9", [IO.TEXT], "llm") == "café"
    with pytest.raises(StackFlowError) as e:
        fit_kind({"a": 1}, [IO.TEXT], "llm")
    assert e.value.code == Code.JSON_FORMAT and "llm takes text, not JSON" in e.value.detail
    with pytest.raises(StackFlowError):
        fit_kind(b"\xff\xfe", [IO.TEXT], "llm")
    assert fit_kind({"a": 1}, [IO.JSON], "embed") == {"a": 1}
    assert fit_kind(b"\xff", [IO.TEXT, IO.AUDIO_PCM], "asr") == b"\xff"  # binary stays binary


# --- outputs --------------------------------------------------------------------------------------
def test_stream_pieces_then_a_finish():
    assert list(shape(["a", "", "b"], stream=True, per_call=True)) == [Out("a", False), Out("b", False), Out("", True)]


def test_final_ends_a_stream_with_content_and_wins_in_a_whole_format():
    assert list(shape(["par", Final("tial")], stream=True, per_call=True)) == [Out("par", False), Out("tial", True)]
    assert list(shape(["par", Final("tial")], stream=False, per_call=True)) == [Out("tial")]


def test_whole_format_joins_text_bytes_or_keeps_values():
    assert list(shape(["a", "b"], stream=False, per_call=True)) == [Out("ab")]
    assert list(shape([b"a", b"b"], stream=False, per_call=True)) == [Out(b"ab")]
    assert list(shape([{"n": 1}], stream=False, per_call=True)) == [Out({"n": 1})]
    assert list(shape([], stream=False, per_call=True)) == []


def test_units_ending_streams_themselves_send_only_finals():
    assert list(shape(["partial"], stream=False, per_call=False)) == []
    assert list(shape(["p", Final("all")], stream=True, per_call=False)) == [Out("p", False), Out("all", True)]
    assert cancelled(stream=True, per_call=True) == [Out("", True)]
    assert cancelled(stream=False, per_call=False) == []


def test_streamed_input_answers_at_once_and_ends_at_the_last_chunk():
    shaper = ChunkShaper()
    assert list(shaper.shape(Chunk("x", 0, False), ["one"], stream=True)) == [Out("one", False)]
    assert list(shaper.shape(Chunk("y", 1, True), [Final("done")], stream=True)) == [Out("done", True)]
    whole = ChunkShaper()
    assert list(whole.shape(Chunk("x", 0, False), ["a"], stream=False)) == []
    assert list(whole.shape(Chunk("y", 1, True), ["b"], stream=False)) == [Out("ab")]


def test_message_data_numbers_stream_chunks():
    assert Out("a", False).message_data(0) == ({"delta": "a", "index": 0, "finish": False}, 1)
    assert Out("", True).message_data(1) == ({"delta": "", "index": 1, "finish": True}, 0)
    assert Out({"n": 1}).message_data(5) == ({"n": 1}, 5)


# --- the in-process runner agrees with the host -----------------------------------------------------
class SplitParams(UnitParams):
    response_format: str = "split.utf-8.stream"


class Split(Unit):
    kind = "split"
    needs_model = False
    Params = SplitParams
    inputs = {"text": IO.TEXT}
    outputs = {"text": IO.TEXT_STREAM}

    def infer(self, text):
        yield text[:3]
        yield Final(text[3:])


def test_local_task_follows_the_contract_in_both_formats():
    with LocalTask(Split) as task:
        assert task.infer_text("partial") == "partial"  # not "parFinal('tial')"
        assert task.infer(b"bytes!") == ["byt", "es!"]  # bytes fitted to a text unit
    with LocalTask(Split, {"response_format": "split.utf-8"}) as task:
        assert task.infer("partial") == ["tial"]  # a whole format sends the Final only, as the host does


def test_stackflow_replies_are_the_host_messages():
    with LocalTask(Split) as task:
        replies = stackflow_replies(
            task, "split.utf-8.stream", chunk("hello", 0, True), request_id="q1", work_id="split.1000"
        )
        assert [r["data"] for r in replies] == [
            {"delta": "hel", "index": 0, "finish": False},
            {"delta": "lo", "index": 1, "finish": True},
        ]
        assert {r["request_id"] for r in replies} == {"q1"} and replies[0]["object"] == "split.utf-8.stream"
        bad = stackflow_replies(task, "split.utf-8.stream", chunk("x", 4), request_id="q2")
        assert bad[0]["error"]["code"] == Code.STREAM_INDEX and bad[0]["work_id"] == "split"


def test_unit_actions_are_declared_with_the_decorator():
    from emberflow.unit import action

    class Knob(Unit):
        kind = "knob"

        @action("turn")
        def turn(self, data):
            return data

    assert Knob.custom_actions == {"turn": "turn"} and "turn" in Knob.schema()["actions"]
    with pytest.raises(TypeError, match=r"@action\('spin'\)"):

        class Old(Unit):  # the old naming convention gets told what to write instead
            kind = "old"

            def on_action_spin(self, data):
                pass
