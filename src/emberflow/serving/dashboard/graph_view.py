"""The flow graph: running tasks as nodes, links as edges with their queue policy, drops, and
whether frames passed since the last snapshot (the source's output counter moved)."""

from __future__ import annotations

from typing import Any

from emberflow.sys.tasks import TaskRecord

AUDIO = "audio"  # `sys.pcm` in a setup's input names the audio task (see sys.audio_policy)


def _source_of(entry: str, live: set[str]) -> str | None:
    """The live task an `input` entry names: a work id, or `sys.*` for the microphone. Entries
    naming the task's own inference channel (`llm.utf-8.stream`) are no link."""
    if entry in live:
        return entry
    if entry.startswith("sys") and AUDIO in live:
        return AUDIO
    return None


def graph(
    records: list[TaskRecord], infos: dict[str, dict[str, Any]], outputs_before: dict[str, int], states: dict[str, str]
) -> dict[str, Any]:
    live = {r.work_id for r in records}
    nodes = [
        {
            "id": r.work_id,
            "kind": r.kind,
            "state": states.get(r.work_id, "ready"),
            "model": (infos.get(r.work_id) or {}).get("resolved_model") or r.model,
        }
        for r in records
    ]
    edges = []
    for rec in records:
        wanted = rec.params.get("input_policy")
        policies: dict[str, Any] = wanted if isinstance(wanted, dict) else {}
        dropped = (infos.get(rec.work_id) or {}).get("queue", {}).get("dropped", {})
        seen: set[str] = set()
        for entry in rec.inputs:
            source = _source_of(entry, live)
            if source is None or source in seen or source == rec.work_id:
                continue
            seen.add(source)
            now = _outputs(infos, source)
            edges.append(
                {
                    "id": f"{source}->{rec.work_id}",
                    "source": source,
                    "target": rec.work_id,
                    "policy": str(policies.get(entry) or policies.get(source) or "lossless"),
                    "drops": int(dropped.get(source, 0)),
                    "lit": now is not None and now > outputs_before.get(source, now),
                }
            )
    return {"nodes": nodes, "edges": edges}


def _outputs(infos: dict[str, dict[str, Any]], work_id: str) -> int | None:
    info = infos.get(work_id)
    if not info:
        return None
    if work_id == AUDIO:  # the audio unit publishes captured frames, not outputs
        return int(info.get("unit", {}).get("captured_frames", 0)) + int(info.get("stats", {}).get("outputs", 0))
    return int(info.get("stats", {}).get("outputs", 0))


def outputs_of(infos: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {w: n for w in infos if (n := _outputs(infos, w)) is not None}
