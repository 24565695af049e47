"""ImageNet-1k classification with EfficientNet-Lite0 (built from its PyTorch checkpoint).

Preprocessing as the Lite models were trained: RGB, short side to 256, centre crop 224, then
(x - 127.5) / 127.5. The Lite variant uses ReLU6 everywhere (swapping in Swish ruins it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class EfficientNetLite:
    def __init__(self, model_path: str | Path, labels: list[str], threads: int = 1, size: int = 224, resize: int = 256):
        from emberflow.runtime import Engine

        if len(labels) != 1000:
            raise ValueError(f"expected 1000 ImageNet labels, got {len(labels)}")
        self.engine = Engine(model_path, threads=threads, check_inputs=False)
        self.labels, self.size, self.resize = labels, size, resize

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        h, w = rgb.shape[:2]
        scale = self.resize / min(h, w)
        nw, nh = max(self.size, round(w * scale)), max(self.size, round(h * scale))
        img = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        top, left = (nh - self.size) // 2, (nw - self.size) // 2
        crop = img[top : top + self.size, left : left + self.size].astype(np.float32)
        return np.ascontiguousarray(((crop - 127.5) / 127.5).transpose(2, 0, 1)[None])

    def __call__(self, rgb: np.ndarray, top_k: int = 5) -> list[tuple[str, float]]:
        (logits,) = self.engine([self.preprocess(rgb)])
        z = logits[0].astype(np.float64)
        p = np.exp(z - z.max())
        p /= p.sum()
        best = np.argsort(-p)[:top_k]
        return [(self.labels[i], float(p[i])) for i in best]


def load_labels(path: str | Path) -> list[str]:
    """A JSON list of names, or a text file with one name per line."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return [str(x) for x in json.loads(text)]
    return [line.strip() for line in text.splitlines() if line.strip()]
