"""Per-turn latency breakdown from the hop stamps a frame collected on its way.

Stamps are `(where, monotonic time)`; units add named marks with `context.mark(name)`.
The turn starts at the ASR's `speech_end` mark (capture time of the last voiced frame).
"""

from __future__ import annotations


def _find(hops: list, suffix: str) -> float | None:
    for where, t in hops:
        if where.endswith(suffix):
            return t
    return None


def _first_kind(hops: list, kind: str, suffix: str = "") -> float | None:
    for where, t in hops:
        head = where.split(".", 1)[0]
        if head == kind and where.endswith(suffix) and where.count(".") == (2 if suffix else 1):
            return t
    return None


def turn_breakdown(hops: list, played_at: float) -> dict[str, float] | None:
    """Seconds for each stage of one voice turn; None if the frame did not come from speech."""
    speech_end = _find(hops, ".speech_end")
    if speech_end is None:
        return None
    endpoint = _find(hops, ".endpoint")
    asr_out = next((t for w, t in hops if w.split(".", 1)[0] in ("asr", "whisper") and w.count(".") == 1), None)
    llm_start = _first_kind(hops, "llm", ".start")
    llm_first = _find(hops, ".first_token")
    tts_start = next((t for w, t in hops if w.split(".", 1)[0] in ("tts", "melotts") and w.endswith(".start")), None)
    tts_out = next((t for w, t in hops if w.split(".", 1)[0] in ("tts", "melotts") and w.count(".") == 1), None)
    out: dict[str, float] = {"end_to_end": played_at - speech_end}
    if endpoint is not None:
        out["end_of_speech_wait"] = endpoint - speech_end
        if asr_out is not None:
            out["asr"] = asr_out - endpoint
    llm_out = next((t for w, t in hops if w.split(".", 1)[0] in ("llm", "vlm") and w.count(".") == 1), None)
    if llm_start is not None and llm_first is not None:
        out["llm_first_token"] = llm_first - llm_start
    if llm_start is not None and llm_out is not None:
        out["llm_first_clause"] = llm_out - llm_start  # what the TTS waited for
    if tts_start is not None and tts_out is not None:
        out["tts_first_audio"] = tts_out - tts_start
    stages = ("end_of_speech_wait", "asr", "llm_first_clause", "tts_first_audio")
    if all(k in out for k in stages):
        # Everything that is not waiting for silence or computing: hops, queues, playback start.
        out["framework_overhead"] = out["end_to_end"] - sum(out[k] for k in stages)
    return {k: round(v, 4) for k, v in out.items()}
