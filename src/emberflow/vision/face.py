"""Face detection with BlazeFace (the 256x256 "back camera" model, converted from TF.js).

Input: letterboxed RGB scaled to [-1, 1]. 896 SSD anchors: a 16x16 grid with 2 anchors per cell,
then an 8x8 grid with 6; every anchor regresses (x, y, w, h) and six landmarks (eyes, nose,
mouth, ears) in input pixels relative to its centre, plus one logit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emberflow.vision.boxes import Detection, nms
from emberflow.vision.image import letterbox

LANDMARKS = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")


def anchors(size: int = 256) -> np.ndarray:
    """Anchor centres [896, 2], normalised, in the order of the model's outputs."""
    out = []
    for grid, per_cell in ((size // 16, 2), (size // 32, 6)):
        ys, xs = np.mgrid[0:grid, 0:grid]
        centres = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], -1).reshape(-1, 2)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


class BlazeFace:
    def __init__(self, model_path: str | Path, threads: int = 1, size: int = 256):
        from emberflow.runtime import Engine

        self.engine = Engine(model_path, threads=threads, check_inputs=False)
        self.size = size
        self.anchors = anchors(size)

    def __call__(self, rgb: np.ndarray, score_threshold: float = 0.75, iou_threshold: float = 0.3) -> list[Detection]:
        boxed, lb = letterbox(rgb, self.size, self.size)
        x = (boxed.astype(np.float32) / 127.5 - 1.0)[None]
        outs = self.engine([x])
        n_fine = (self.size // 16) ** 2 * 2
        regs = np.concatenate(
            [
                next(o[0] for o in outs if o.shape[1] == n and o.shape[2] == 16)
                for n in (n_fine, len(self.anchors) - n_fine)
            ]
        )
        logits = np.concatenate(
            [
                next(o[0, :, 0] for o in outs if o.shape[1] == n and o.shape[2] == 1)
                for n in (n_fine, len(self.anchors) - n_fine)
            ]
        )
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -50.0, 50.0)))
        idx = np.nonzero(scores > score_threshold)[0]
        if idx.size == 0:
            return []
        r, a = regs[idx], self.anchors[idx] * self.size
        cx, cy = a[:, 0] + r[:, 0], a[:, 1] + r[:, 1]
        boxes = np.stack([cx - r[:, 2] / 2, cy - r[:, 3] / 2, cx + r[:, 2] / 2, cy + r[:, 3] / 2], 1)
        faces = []
        for i in nms(boxes, scores[idx], iou_threshold):
            x1, y1 = lb.to_image(boxes[i, 0], boxes[i, 1])
            x2, y2 = lb.to_image(boxes[i, 2], boxes[i, 3])
            marks = r[i, 4:].reshape(6, 2) + a[i]
            mx, my = lb.to_image(marks[:, 0], marks[:, 1])
            faces.append(
                Detection(
                    "face",
                    float(scores[idx][i]),
                    (float(x1), float(y1), float(x2), float(y2)),
                    [(float(u), float(v), 1.0) for u, v in zip(mx, my)],
                )
            )
        return faces
