"""Semantic end of turn and the live transcript, in-process on the real models (Whisper tiny.en,
Silero, Smart Turn v3.2), fed frame by frame as the microphone would (emberflow.voice.replay).

Background work settles before the next frame, so each decision is taken at the audio instant it
was asked for: what is checked is the decision, never how fast this machine is."""

from __future__ import annotations

import numpy as np
import pytest
from speech import hesitation, say, silence

from emberflow.unit.local import LocalTask
from emberflow.units.asr import ASRUnit
from emberflow.voice import pcm
from emberflow.voice.replay import LiveReplay

pytestmark = pytest.mark.slow

SEMANTIC = {  # as the shipped voice-assistant flow sets it
    "model": "whisper-tiny.en",
    "endpointing": "semantic",
    "turn_pause": 0.064,
    "min_silence": 1.0,
    "partial_interval": 0,
    "response_format": "asr.utf-8.stream",
}


@pytest.fixture(scope="module")
def semantic():
    with LocalTask(ASRUnit, SEMANTIC) as task:
        yield task


def test_a_question_with_a_hesitation_is_one_turn(semantic):
    """ "What is the capital of ... France?": the pause after "of" is judged unfinished, so the
    question is not cut there; it ends on the verdict after "France"."""
    before = semantic.unit.info()
    audio = np.concatenate([silence(0.5), hesitation("What is the capital of France?", 5, 0.5), silence(1.5)])
    out = LiveReplay(semantic).feed(audio)
    after = semantic.unit.info()
    assert len(out) == 1, out  # one question, not "What is the capital of?" then "France?"
    text = out[0][1].lower()
    assert "capital of" in text and text.rstrip(".?!").split()[-1] not in ("of", "the"), text
    verdicts = {k: after["turn_verdicts"][k] - before["turn_verdicts"].get(k, 0) for k in after["turn_verdicts"]}
    assert verdicts["incomplete_words"] + verdicts["incomplete_audio"] >= 1, verdicts  # the hesitation
    assert verdicts["complete"] == 1, verdicts  # the end


def test_a_complete_question_ends_on_the_verdict_not_the_silence(semantic):
    before = semantic.unit.info()
    speech = np.concatenate([silence(0.5), say("How many legs does a spider have?")])
    out = LiveReplay(semantic).feed(np.concatenate([speech, silence(1.5)]))
    after = semantic.unit.info()
    assert [t for _, t in out] == ["How many legs does a spider have?"]
    ended = {k: v - before["turns_ended_by"].get(k, 0) for k, v in after["turns_ended_by"].items()}
    assert ended.get("semantic") == 1 and not ended.get("silence"), ended
    # ended long before the 1 s silence would have (audio time, not the machine's speed)
    assert out[0][0] < len(speech) / pcm.RATE + 0.5
    # recognition was done before the endpoint: the background transcript was reused as it was
    reused = after["transcripts"]["reused"] - before["transcripts"]["reused"]
    assert reused == 1 and after["transcripts"]["decoded"] == before["transcripts"]["decoded"]


def test_a_pause_judged_unfinished_is_judged_again_as_the_silence_grows():
    """`turn_repeat`: a "not yet" is asked about again after more silence, while no verdict is
    pending; the words still hold a hesitation open ("the capital of ..." is unfinished however
    often it is asked), so the question stays one turn."""
    question = "What is the capital of France?"
    audio = np.concatenate([silence(0.5), hesitation(question, 5, 0.8), silence(1.5)])
    asked = {}
    for repeat in (0.0, 0.2):
        with LocalTask(ASRUnit, {**SEMANTIC, "turn_repeat": repeat}) as task:
            out = LiveReplay(task).feed(audio)
            info = task.unit.info()
        assert len(out) == 1 and "capital of" in out[0][1].lower(), out
        asked[repeat] = info["turn_verdicts"]["asked"]
        assert info["turn_verdicts"]["complete"] == 1, info["turn_verdicts"]
    # the 0.8 s hesitation is asked about at 0.064 s, and with repeats again at about 0.26, 0.46
    # and 0.66 s (the same audio: any dip of the voice between words counts in both)
    assert asked[0.2] >= asked[0.0] + 2, asked


def test_fixed_silence_mode_is_still_a_setting():
    with LocalTask(ASRUnit, {**SEMANTIC, "endpointing": "silence", "min_silence": 0.4}) as task:
        speech = np.concatenate([silence(0.5), say("What color is the sky?")])
        out = LiveReplay(task).feed(np.concatenate([speech, silence(1.0)]))
        info = task.unit.info()
    assert len(out) == 1 and "sky" in out[0][1], out
    assert info["turns_ended_by"] == {"silence": 1} and "turn_verdicts" not in info
    assert out[0][0] >= len(speech) / pcm.RATE + 0.1  # waited for the 0.4 s silence (audio time)
    assert info["transcripts"]["reused"] == 1  # decoded during the silence, reused at its end
