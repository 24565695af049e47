"""Barge-in by voice: speech over the answer stops it, the loudspeaker's own echo does not."""

from __future__ import annotations

import collections
import time

import numpy as np
import pytest
from speech import say, silence, utterance
from voicekit import push

from emberflow.bus.frame import BusFrame
from emberflow.unit.local import LocalTask
from emberflow.units.audio import ECHO_WINDOW
from emberflow.units.bargein import BargeInUnit
from emberflow.voice import pcm
from emberflow.voice.bargein import rms
from support import eventually

pytestmark = pytest.mark.slow
ANNOUNCEMENT = (
    "This is a long announcement that keeps going for quite a while, so that there is plenty of "
    "time to talk over it before it ends."
)


def feed(task, mic: np.ndarray, played: np.ndarray) -> list:
    """Microphone frames tagged as the audio unit tags them while `played` plays: with the
    loudest played chunk of the last ECHO_WINDOW (what the microphone may still hear)."""
    before = len(task.emitted)
    window = collections.deque(maxlen=1 + int(ECHO_WINDOW * pcm.RATE / pcm.FRAME))
    for i, (m, r) in enumerate(zip(pcm.frames(mic), pcm.frames(played), strict=False)):
        window.append(rms(r))
        data = {"seq": i, "playing": True, "reference_rms": max(window)}
        task.unit.on_frame(BusFrame("audio", "sys.pcm", data, m, hops=[("audio", time.monotonic())]))
    return task.emitted[before:]


def test_the_loudspeakers_echo_is_not_the_user():
    answer = np.concatenate([say(ANNOUNCEMENT), say(ANNOUNCEMENT)])[: pcm.RATE * 6]
    echo = np.concatenate([np.zeros(400, np.int16), (answer * 0.5).astype(np.int16)])[: len(answer)]  # 25 ms late
    with LocalTask(BargeInUnit, {"model": "silero-vad"}) as task:
        # six seconds of the answer heard back at half its level: speech to Silero, but the echo
        assert feed(task, echo, answer) == []
        assert 0.2 < task.unit.info()["echo_gain"] < 1.0  # the coupling was learned from the played samples
        # the user talks over it (at the level of the answer itself): that is a barge-in
        user = np.concatenate([silence(0.3), say("Stop, please."), silence(0.3)])
        mixed = (echo[: len(user)] + user).clip(-32768, 32767).astype(np.int16)
        events = feed(task, mixed, answer[: len(user)])
    assert [(o, d.keys() >= {"speech_start"}) for o, d, _ in events] == [("bargein.bool", True)]
    assert task.unit.info()["detections"][0]["delay_frames"] * pcm.FRAME / pcm.RATE <= 0.2


def test_speech_over_the_answer_stops_playback(voice_server):
    c = voice_server.client(timeout=120)
    bargein = c.setup("bargein", {"model": "silero-vad", "enoutput": True, "input": ["sys.pcm"]})
    tts = c.setup(
        "tts",
        {
            "model": "piper-en-us-joe-medium",
            "response_format": "sys.pcm",
            "enoutput": False,
            "input": ["tts.utf-8", bargein],
            "cpu_threads": 1,
            "nice": 2,
        },
    )
    c.infer(tts, ANNOUNCEMENT, object="tts.utf-8")
    eventually(lambda: c.request("audio", "taskinfo")["data"]["unit"]["playing"])
    # the microphone hears 0.8 s of the room while it plays (no echo: the speaker is a file),
    # then somebody talks over the answer, in real time
    push(c, utterance(0.8, "Wait, stop please.", 0.5), speed=1.0)
    event = c.next_message(lambda m: m["work_id"] == bargein and m["object"] == "bargein.bool")
    assert "speech_start" in event["data"]
    time.sleep(0.5)
    audio = c.request("audio", "taskinfo")["data"]["unit"]
    detection = c.request(bargein, "taskinfo")["data"]["unit"]["detections"][-1]
    assert not audio["playing"] and audio["stopped_by"][-1] == bargein, audio  # the voice stopped it, no wake word
    assert audio["stopped_at"][-1] >= detection["at"]  # by the detection's frame, after it
    # the detection took at most 200 ms of the user's speech (counted in audio frames)
    assert detection["delay_frames"] * pcm.FRAME / pcm.RATE <= 0.2, detection
    assert audio["played_seconds"] < 6  # the announcement (about 9 s) was cut short
    info = c.request(tts, "taskinfo")["data"]["unit"]
    assert info["pending_chars"] == 0  # unspoken text dropped
    assert info["cpu_threads"] == 1 and info["nice"] >= 2  # the thread count and priority asked for
