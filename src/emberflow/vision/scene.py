"""What the vision models can say about an image, as facts an LLM can answer from.

No vision-language model ships offline, so "describe this image" is grounded: the detector's
objects (with where they are and how big), the classifier's top ImageNet classes, the OCR's
text and the face detector's faces become a short list of facts. The LLM answers the question
from them and is told to say what the facts do not show. The same facts give a one-line
summary that needs no LLM at all.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emberflow.vision.boxes import Detection, nms


@dataclass
class Scene:
    width: int
    height: int
    objects: list[Detection] = field(default_factory=list)
    classes: list[tuple[str, float]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    faces: list[Detection] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # analyses that are not installed

    def where(self, d: Detection) -> str:
        x1, y1, x2, y2 = d.box
        cx, cy = (x1 + x2) / 2 / self.width, (y1 + y2) / 2 / self.height
        col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
        row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
        place = "centre" if (row, col) == ("middle", "centre") else f"{row} {col}" if row != "middle" else col
        share = d.area / (self.width * self.height)
        size = "large" if share > 0.25 else "small" if share < 0.03 else "medium"
        return f"{size}, {place}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": [self.width, self.height],
            "objects": [
                {
                    "class": d.label,
                    "confidence": round(d.score, 2),
                    "where": self.where(d),
                    "bbox": [round(v, 1) for v in d.box],
                }
                for d in self.objects
            ],
            "classes": [{"class": c, "confidence": round(p, 3)} for c, p in self.classes],
            "text": self.text,
            "faces": len(self.faces),
            "not_analysed": self.missing,
        }

    def facts(self) -> str:
        """Plain sentences, no percentages: a 135M LLM repeats numbers it does not understand."""
        lines = []
        if self.objects:
            lines.append(
                "Objects seen: " + "; ".join(f"a {d.label} ({self.where(d)})" for d in self.objects[:12]) + "."
            )
        else:
            lines.append("Objects seen: none of the 80 everyday kinds of object the detector knows.")
        if self.classes and self.classes[0][1] >= 0.3:
            lines.append(f"The whole picture looks like: {self.classes[0][0]}.")
        if self.text:
            lines.append("Text written in it: " + " / ".join(f'"{t}"' for t in self.text[:10]) + ".")
        elif "ocr" not in self.missing:
            lines.append("Text written in it: none.")
        if "faces" not in self.missing:
            n = len(self.faces)
            lines.append(f"Faces: {n}." if n else "Faces: none.")
        if self.missing:
            lines.append(f"Not analysed (model not installed): {', '.join(self.missing)}.")
        return "\n".join(lines)

    def summary(self) -> str:
        """One sentence from the facts alone: what was found, counted."""
        counts = Counter(d.label for d in self.objects)
        parts = [
            f"{n} {label}{'s' if n > 1 and not label.endswith('s') else ''}" if n > 1 else f"a {label}"
            for label, n in counts.most_common(6)
        ]
        if self.faces:
            parts.append(f"{len(self.faces)} face{'s' if len(self.faces) > 1 else ''}")
        said = f"I can see {_join(parts)}" if parts else "I see none of the objects I know"
        if self.classes and self.classes[0][1] >= 0.3:
            said += f"; it looks like {self.classes[0][0]}"
        if self.text:
            said += f'; it reads "{" ".join(self.text)[:80]}"'
        return said + "."


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


class SceneAnalyser:
    """Loads the installed vision models named in the vlm descriptor and runs them on an image."""

    def __init__(self, models: dict[str, str], threads: int = 1):
        from emberflow.models.catalogue import Catalogue

        cat = Catalogue()
        self.missing: list[str] = []
        self.names: dict[str, str] = {}

        def path(role: str) -> Path | None:
            name = models.get(role) or ""
            if not name:
                return None
            try:
                desc = cat.resolve(name).descriptor
            except KeyError:
                self.missing.append(role)
                return None
            p = cat.weights_path(desc)
            if p is None:
                self.missing.append(role)
            else:
                self.names[role] = desc["mode"]
            return p

        self.detector = self.classifier = self.ocr = self.faces = None
        if (p := path("detector")) is not None:
            from emberflow.vision.detect import NanoDet

            self.detector = NanoDet(p, threads)
        if (p := path("classifier")) is not None:
            from emberflow.models.catalogue import package_file
            from emberflow.vision.classify import EfficientNetLite, load_labels

            param = cat.resolve(models["classifier"]).mode_param
            labels = package_file(param.get("labels_package", ""), param.get("labels_file", ""))
            if labels is None:
                self.missing.append("classifier")
            else:
                self.classifier = EfficientNetLite(p, load_labels(labels), threads)
        if (p := path("ocr")) is not None:
            from emberflow.vision.ocr import PPOCR

            param = cat.resolve(models["ocr"]).mode_param
            # only confident lines: in a photo, a stray texture read as "ndaley" is not a fact
            self.ocr = PPOCR(
                p / param.get("det", "det/det.onnx"),
                p / param.get("rec", "rec/rec.onnx"),
                p / param.get("dictionary", "ppocrv5_dict.txt"),
                threads=threads,
                drop_score=0.8,
            )
        if (p := path("faces")) is not None:
            from emberflow.vision.face import BlazeFace

            self.faces = BlazeFace(p, threads)

    def __call__(self, rgb: np.ndarray) -> Scene:
        h, w = rgb.shape[:2]
        scene = Scene(w, h, missing=list(self.missing))
        if self.detector is not None:
            objects = self.detector(rgb, 0.35, 0.5)
            # One thing seen as two classes (the dog that is also a "cat") is one fact: the likelier one.
            boxes = np.array([d.box for d in objects], np.float32).reshape(-1, 4)
            keep = nms(boxes, np.array([d.score for d in objects], np.float32), 0.7)
            scene.objects = [objects[i] for i in keep]
        if self.classifier is not None:
            scene.classes = [(c, p) for c, p in self.classifier(rgb, 3) if p >= 0.1]
        if self.ocr is not None:
            scene.text = [line.text for line in self.ocr(rgb)]
        if self.faces is not None:
            scene.faces = self.faces(rgb)
        return scene
