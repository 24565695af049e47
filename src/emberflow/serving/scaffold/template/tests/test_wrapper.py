"""The project's own test: the unit in-process (no server), on the sample data."""

import json
from pathlib import Path

import pytest

from emberflow.unit import UnitError
from emberflow.unit.local import LocalTask
from wrapper import Result, Wrapper

SAMPLE = Path(__file__).resolve().parent.parent / "sample"


def params(**extra):
    return {**json.loads((SAMPLE / "params.json").read_text()), **extra}


def test_one_shot_on_the_sample():
    request = json.loads((SAMPLE / "request.json").read_text())
    with LocalTask(Wrapper, params()) as task:
        (out,) = task.infer(request)
    result = Result.model_validate(out)
    assert result.count == 9 and result.image_size == [4, 3] and result.audio_seconds == 0.5


def test_streaming_yields_one_result_per_sentence():
    with LocalTask(Wrapper, params(response_format="__NAME__.json.stream")) as task:
        pieces = task.infer({"text": "One two. Three four five! Six?"})
    assert [p["count"] for p in pieces] == [2, 3, 1]


def test_params_are_validated_and_errors_carry_user_codes():
    with pytest.raises(Exception):
        LocalTask(Wrapper, params(threshold=2.0))  # out of bounds
    with LocalTask(Wrapper, params()) as task, pytest.raises(UnitError) as e:
        task.infer({"options": {}})
    assert e.value.detail.startswith("10001")


def test_session_answers_each_sentence_as_its_text_arrives():
    with LocalTask(Wrapper, params(response_format="__NAME__.json.stream")) as task:
        steps = task.session([{"text": "One two. Thr"}, {"text": "ee four five! Six"}, {"text": ""}])
    assert [[r["count"] for r in step] for step in steps] == [[2], [3], [1]]


def test_stop_word_resource_is_loaded_used_and_unloaded():
    with LocalTask(Wrapper, params(stopwords="en")) as task:
        with pytest.raises(UnitError) as e:
            task.infer({"text": "the fox"})
        assert "'en' is not loaded" in e.value.detail
        task.load_resource("en", "the a")
        (out,) = task.infer({"text": "The fox and a dog."})
        assert out["count"] == 3
        task.unload_resource("en")
        with pytest.raises(UnitError):
            task.load_resource("empty", " ")
