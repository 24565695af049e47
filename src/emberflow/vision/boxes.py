"""Detections: boxes in original-image pixels, non-maximum suppression, and StackFlow's yolo output.

StackFlow §7.10: `yolo.box` gives `{"class", "confidence", "bbox": [x1, y1, x2, y2]}` rounded to two
decimals; `yolo.boxV2` gives `bbox: [x, y, w, h]` unrounded; pose models add `kps`, a flat list of
x, y, score per keypoint (the real unit copies its keypoint features the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the original image's pixels
    keypoints: list[tuple[float, float, float]] = field(default_factory=list)  # (x, y, score)

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def stackflow(self, v2: bool = False) -> dict[str, Any]:
        x1, y1, x2, y2 = self.box
        if v2:
            out: dict[str, Any] = {
                "class": self.label,
                "confidence": float(self.score),
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
            }
        else:
            out = {
                "class": self.label,
                "confidence": round(float(self.score), 2),
                "bbox": [round(float(v), 2) for v in (x1, y1, x2, y2)],
            }
        if self.keypoints:
            flat = [float(v) for kp in self.keypoints for v in kp]
            out["kps"] = flat if v2 else [round(v, 2) for v in flat]
        return out


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box a [4] against boxes b [n, 4] (x1, y1, x2, y2)."""
    x1, y1 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x2, y2 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, classes: np.ndarray | None = None, limit: int = 100
) -> list[int]:
    """Indices kept by greedy NMS, best first. With `classes`, boxes of different classes never
    suppress each other (the usual offset trick: each class is moved to its own region)."""
    if len(boxes) == 0:
        return []
    b = boxes.astype(np.float64)
    if classes is not None:
        b = b + (classes.astype(np.float64) * (float(b.max()) + 1.0))[:, None]
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < limit:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        order = rest[iou(b[i], b[rest]) <= iou_threshold]
    return keep
