"""COCO-80 object detection with NanoDet-m (converted from its TF.js graph model).

Preprocessing: letterbox to 416x416, BGR, (x - mean) / std per channel, NCHW. The head has three
strides (8, 16, 32); per cell it gives 80 class scores (already sigmoid) and, for each side of
the box (left, top, right, bottom), 11 distance bins: the distance is the softmax-weighted mean
bin times the stride, measured from the cell centre ((i + 0.5) * stride). Then per-class NMS, and
boxes are mapped back through the letterbox to the original image's pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emberflow.vision.boxes import Detection, nms
from emberflow.vision.image import letterbox

MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)
STRIDES = (8, 16, 32)
BINS = 11


def coco_labels() -> list[str]:
    return (Path(__file__).parent / "labels" / "coco80.txt").read_text().split("\n")[:80]


class NanoDet:
    def __init__(self, model_path: str | Path, threads: int = 1, size: int = 416):
        from emberflow.runtime import Engine

        self.engine = Engine(model_path, threads=threads, check_inputs=False)
        self.size = size
        self.labels = coco_labels()
        self.input_name = self.engine.inputs[0].name
        self.output_names = [o.name for o in self.engine.outputs]

    def preprocess(self, rgb: np.ndarray) -> tuple[np.ndarray, Any]:
        fill = tuple(int(v) for v in MEAN_BGR[::-1])  # padding becomes 0 after normalisation
        boxed, lb = letterbox(rgb, self.size, self.size, fill)  # type: ignore[arg-type]
        x = (boxed[..., ::-1].astype(np.float32) - MEAN_BGR) / STD_BGR
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), lb

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.engine([x])

    def postprocess(
        self, outputs: list[np.ndarray], lb: Any, score_threshold: float, iou_threshold: float, limit: int = 100
    ) -> list[Detection]:
        boxes, scores, classes = [], [], []
        for stride in STRIDES:
            g = self.size // stride
            cls = next(o[0] for o in outputs if o.shape[1] == g * g and o.shape[2] == len(self.labels))
            reg = next(o[0] for o in outputs if o.shape[1] == g * g and o.shape[2] == 4 * BINS)
            cell, label = np.nonzero(cls > score_threshold)
            if cell.size == 0:
                continue
            logits = reg[cell].reshape(-1, 4, BINS)
            p = np.exp(logits - logits.max(-1, keepdims=True))
            dist = (p / p.sum(-1, keepdims=True)) @ np.arange(BINS, dtype=np.float32) * stride
            cx = (cell % g + 0.5) * stride
            cy = (cell // g + 0.5) * stride
            boxes.append(np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1))
            scores.append(cls[cell, label])
            classes.append(label)
        if not boxes:
            return []
        b, s, c = np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes)
        out = []
        for i in nms(b, s, iou_threshold, classes=c, limit=limit):
            x1, y1 = lb.to_image(b[i, 0], b[i, 1])
            x2, y2 = lb.to_image(b[i, 2], b[i, 3])
            if x2 - x1 >= 1 and y2 - y1 >= 1:
                out.append(Detection(self.labels[int(c[i])], float(s[i]), (float(x1), float(y1), float(x2), float(y2))))
        return out

    def __call__(self, rgb: np.ndarray, score_threshold: float = 0.3, iou_threshold: float = 0.5) -> list[Detection]:
        x, lb = self.preprocess(rgb)
        return self.postprocess(self.run(x), lb, score_threshold, iou_threshold)
