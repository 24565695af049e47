"""What `emberflow up FLOW` prints for the vision units' outputs (detections per frame, answers)."""

from __future__ import annotations

from typing import Any

from emberflow.vision.draw import describe


def line(msg: dict[str, Any]) -> str | None:
    """The line to print for one task output, or None when it is not a vision output."""
    obj, data = msg.get("object", ""), msg.get("data")
    if obj.startswith(("yolo.box", "classify.json")):
        if isinstance(data, list):
            return f"{msg.get('work_id')}: {describe(data) if obj.startswith('yolo') else _classes(data)}"
        if isinstance(data, dict) and isinstance(data.get("delta"), dict):  # stream: one detection a chunk
            return f"{msg.get('work_id')}: {describe([data['delta']])}"
        return None
    if obj.startswith("ocr"):
        text = data.get("text") if isinstance(data, dict) else data
        return f"{msg.get('work_id')} read: {text}" if isinstance(text, str) else None
    return None


def _classes(data: list[dict[str, Any]]) -> str:
    return ", ".join(f"{c['class']} {float(c['confidence']):.2f}" for c in data)
