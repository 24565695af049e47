"""How the TTS cuts a streamed answer into chunks (Piper, in-process): the first words at once,
then clauses, and words without their clause when the speaker is about to run dry."""

from __future__ import annotations

import pytest

from emberflow.bus.frame import BusFrame
from emberflow.unit.local import LocalTask
from emberflow.units.tts import TTSUnit

pytestmark = pytest.mark.slow

VOICE = {"model": "piper-en-us-joe-medium", "response_format": "sys.pcm", "cpu_threads": 1}


def _stream(task: LocalTask, deltas: list[str]) -> list[dict]:
    """Feed an LLM's streamed answer delta by delta; the chunks the TTS spoke."""
    for i, delta in enumerate(deltas):
        frame = BusFrame("llm.0", "llm.utf-8.stream", {"delta": delta, "index": i, "finish": i == len(deltas) - 1})
        list(task.unit.on_frame(frame) or [])
    return task.unit.info()["chunks"]


DELTAS = ["The", " capital", " of", " France", " is", " a", " city", " of", " art", " and", " light", "."]


def test_first_words_then_the_clause_when_the_speaker_has_audio_to_play():
    # min_runway 0: never cut for the speaker's sake; the first two words go at once
    with LocalTask(TTSUnit, {**VOICE, "first_chunk_words": 2, "min_runway": 0}) as task:
        chunks = _stream(task, DELTAS)
        assert [c["text"] for c in chunks] == ["The capital", "of France is a city of art and light."]
        assert task.unit.info()["runway_chunks"] == 0
        assert all(o == "sys.pcm" for o, _, _ in task.emitted)


def test_words_go_without_their_clause_when_the_speaker_is_about_to_run_dry():
    # a runway longer than any audio sent: after the first chunk the speaker always "runs dry"
    # soon, so every complete word that may end a chunk is spoken as it comes
    with LocalTask(TTSUnit, {**VOICE, "first_chunk_words": 2, "min_runway": 30}) as task:
        chunks = _stream(task, DELTAS)
        info = task.unit.info()
    words = [c["words"] for c in chunks]
    assert words[0] == 2 and sum(words) == len(DELTAS) - 1  # every word spoken once ("." is not one)
    assert info["runway_chunks"] >= 2 and len(chunks) > 2
    assert not any(c["upstream_finished"] for c in chunks[:-1])  # spoken before the answer ended
    # never a chunk ending on a word that needs the next one ("of", "a", "and")
    assert all(c["text"].split()[-1] not in ("of", "a", "and", "is") for c in chunks[:-1]), chunks
    assert " ".join(c["text"] for c in chunks) == "The capital of France is a city of art and light."
