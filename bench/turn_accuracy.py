"""Accuracy of the semantic end of turn on the test questions: early cut-offs and hesitations.

    python bench/turn_accuracy.py [--pause 0.5] [--thresholds 0.3,0.5,0.7] [--turn-pauses 0.064,0.15]
        [--turn-repeats 0,0.25] [--json]

The ASR unit runs in-process on the real models (Whisper tiny.en, Silero, Smart Turn v3.2), fed
frame by frame like a microphone (emberflow.voice.replay), with background work settled before
each next frame: every verdict is the one the models give at that instant, whatever this
machine's speed, so the figures are the same on a loaded machine and a quiet one.

For each question of bench/voice_latency.py (spoken by Piper):
- complete: the whole question, then silence. Counted: ended by the verdict (at the first
  pause), by the long silence (the verdict said "not yet": slower, not wrong), or cut early.
- hesitation: a pause of `--pause` seconds after each word but the last ("What is the capital
  of ... France?"); cut early = the turn ended in the pause, before the rest of the question.
Each is also run with the audio model alone (no check of the words) to show what the words add.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "voice"))
from speech import QUESTIONS, hesitation, say, silence

from emberflow.unit.local import LocalTask
from emberflow.units.asr import ASRUnit
from emberflow.voice.replay import LiveReplay

PARAMS = {
    "model": "whisper-tiny.en",
    "endpointing": "semantic",
    "turn_pause": 0.15,
    "min_silence": 1.0,
    "partial_interval": 0,
    "response_format": "asr.utf-8.stream",
}


def run(threshold: float, pause: float, words: bool, turn_pause: float, turn_repeat: float) -> dict:
    complete = {"verdict": 0, "long_silence": 0, "cut": 0}
    hesitations = {"kept": 0, "cut": 0}
    cut_at: list[str] = []
    params = {
        **PARAMS,
        "turn_threshold": threshold,
        "turn_words": words,
        "turn_pause": turn_pause,
        "turn_repeat": turn_repeat,
    }
    with LocalTask(ASRUnit, params) as task:
        replay = LiveReplay(task)
        for q in QUESTIONS:
            before = dict(task.unit.ended_by)
            out = replay.feed(np.concatenate([silence(0.5), say(q), silence(1.5)]))
            ended = {k: v - before.get(k, 0) for k, v in task.unit.ended_by.items()}
            if len(out) != 1:
                complete["cut"] += 1
            else:
                complete["verdict" if ended.get("semantic") else "long_silence"] += 1
            for k in range(1, len(q.split())):
                out = replay.feed(np.concatenate([silence(0.5), hesitation(q, k, pause), silence(1.5)]))
                if len(out) == 1:
                    hesitations["kept"] += 1
                else:
                    hesitations["cut"] += 1
                    cut_at.append(" ".join(q.split()[:k]) + " | " + " / ".join(str(t) for _, t in out))
    return {
        "threshold": threshold,
        "turn_pause": turn_pause,
        "turn_repeat": turn_repeat,
        "words_checked": words,
        "complete": complete,
        "hesitations": hesitations,
        "cut_at": cut_at,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pause", type=float, default=0.5)
    ap.add_argument("--thresholds", default="0.5")
    ap.add_argument("--turn-pauses", default="0.15", help="silences (s) at which the verdict is asked")
    ap.add_argument("--turn-repeats", default="0.25", help="further silences (s) after which it is asked again")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = [
        run(float(t), args.pause, words, float(tp), float(tr))
        for tp in args.turn_pauses.split(",")
        for tr in args.turn_repeats.split(",")
        for t in args.thresholds.split(",")
        for words in (True, False)
    ]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    n_q = len(QUESTIONS)
    print(f"{n_q} questions; hesitations of {args.pause} s after each word but the last")
    print(
        "| asked at (s) | asked again after (s) | threshold | words checked | complete: ended on the verdict "
        "| complete: long silence | complete: cut | hesitations kept whole | hesitations cut |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        c, h = r["complete"], r["hesitations"]
        total = h["kept"] + h["cut"]
        print(
            f"| {r['turn_pause']} | {r['turn_repeat'] or 'never'} | {r['threshold']} "
            f"| {'yes' if r['words_checked'] else 'no (audio only)'} | {c['verdict']}/{n_q} "
            f"| {c['long_silence']}/{n_q} | {c['cut']}/{n_q} | {h['kept']}/{total} | {h['cut']}/{total} |"
        )
    for r in results:
        for cut in r["cut_at"]:
            print(
                f"  asked at {r['turn_pause']} s, again {r['turn_repeat']}, threshold {r['threshold']}, "
                f"words {'on' if r['words_checked'] else 'off'}: cut after {cut}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
