"""Annotated images: boxes, labels and keypoints drawn on the photo (people would rather look)."""

from __future__ import annotations

from typing import Any

import numpy as np

PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
]


def annotate(rgb: np.ndarray, detections: list[dict[str, Any]]) -> np.ndarray:
    """A copy of the image with StackFlow yolo.box detections drawn (bbox x1, y1, x2, y2; kps)."""
    import cv2

    out = np.ascontiguousarray(rgb.copy())
    thick = max(2, int(max(out.shape[:2]) // 400))
    labels = sorted({d["class"] for d in detections})
    for d in detections:
        color = PALETTE[labels.index(d["class"]) % len(PALETTE)]
        x1, y1, x2, y2 = (round(float(v)) for v in d["bbox"])
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick)
        text = f"{d['class']} {float(d['confidence']):.2f}"
        scale = 0.5 * thick / 2 + 0.2
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(0, y1 - th - base - 2)
        cv2.rectangle(out, (x1, top), (x1 + tw + 4, top + th + base + 2), color, -1)
        cv2.putText(out, text, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
        kps = d.get("kps") or []
        for i in range(0, len(kps) - 2, 3):
            if float(kps[i + 2]) >= 0.3:
                cv2.circle(out, (int(kps[i]), int(kps[i + 1])), thick + 1, color, -1)
    return out


def describe(detections: list[dict[str, Any]]) -> str:
    """One line per image: `dog 0.67 [130, 207, 336, 542]; bicycle ...` or `nothing found`."""
    if not detections:
        return "nothing found"
    return "; ".join(
        f"{d['class']} {float(d['confidence']):.2f} [{', '.join(str(round(float(v))) for v in d['bbox'])}]"
        for d in detections
    )
