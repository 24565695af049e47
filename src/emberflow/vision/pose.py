"""Multi-person pose with MoveNet MultiPose Lightning (converted from its TF.js graph model).

Input: letterboxed RGB, int32, 256x256 (any multiple of 32 works). Output [1, 6, 56]: up to six
people, each 17 keypoints as (y, x, score) normalised to the input, then the person box
(ymin, xmin, ymax, xmax, score). Keypoints follow COCO order, as YOLO pose models' `kps` do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emberflow.vision.boxes import Detection
from emberflow.vision.image import letterbox

KEYPOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)


class MoveNetMultiPose:
    def __init__(self, model_path: str | Path, threads: int = 1, size: int = 256):
        from emberflow.runtime import Engine

        self.engine = Engine(model_path, threads=threads, check_inputs=False)
        self.size = size

    def __call__(self, rgb: np.ndarray, score_threshold: float = 0.3, iou_threshold: float = 0.5) -> list[Detection]:
        boxed, lb = letterbox(rgb, self.size, self.size)
        (out,) = self.engine([boxed[None].astype(np.int32)])
        people = []
        for row in out[0]:
            score = float(row[55])
            if score < score_threshold:
                continue
            kps = row[:51].reshape(17, 3)
            xs, ys = lb.to_image(kps[:, 1] * self.size, kps[:, 0] * self.size)
            x1, y1 = lb.to_image(row[52] * self.size, row[51] * self.size)
            x2, y2 = lb.to_image(row[54] * self.size, row[53] * self.size)
            people.append(
                Detection(
                    "person",
                    score,
                    (float(x1), float(y1), float(x2), float(y2)),
                    [(float(x), float(y), float(s)) for x, y, s in zip(xs, ys, kps[:, 2])],
                )
            )
        return people  # the model already suppresses duplicates (its own NMS over centres)
