"""`emberflow create -n NAME`: a runnable wrapper project (unit class, sample data, README, test)."""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import wave
import zlib
from pathlib import Path

TEMPLATE = Path(__file__).parent / "template"
SAMPLE_TEXT = "The quick brown fox jumps over the lazy dog."


def create_project(name: str, parent: Path) -> Path:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
        raise ValueError(
            f"{name!r}: use lower-case letters, digits and '_', starting with a letter "
            "(it becomes the unit kind and the StackFlow work_id prefix)"
        )
    root = parent / name
    if root.exists():
        raise FileExistsError(f"{root} already exists: pick another name or remove it")
    for src in TEMPLATE.rglob("*"):
        if src.is_dir() or "__pycache__" in src.parts:
            continue
        dst = root / src.relative_to(TEMPLATE)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(src.read_text().replace("__NAME__", name))
    png, wav = _png(4, 3), _wav(0.5)
    (root / "sample" / "sample.png").write_bytes(png)
    (root / "sample" / "sample.wav").write_bytes(wav)
    (root / "sample" / "request.json").write_text(
        json.dumps(
            {
                "text": SAMPLE_TEXT,
                "image": base64.b64encode(png).decode(),
                "audio": base64.b64encode(wav).decode(),
                "options": {"source": "sample"},
            },
            indent=1,
        )
        + "\n"
    )
    return root


def _png(width: int, height: int) -> bytes:
    """A tiny grey RGB PNG, written with zlib only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _wav(seconds: float, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate))
    return buf.getvalue()
