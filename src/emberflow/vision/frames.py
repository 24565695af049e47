"""Camera frames on the bus: raw pixels as the frame payload, a small header as its data.

    data = {"width": 640, "height": 480, "format": "bgr24", "seq": 17, "captured": <monotonic s>}

`bgr24` (what the camera unit publishes for `camera.raw`: no encode/decode cost between units on
one box), `rgb24`, `yuyv422` (StackFlow's camera format) and `jpeg` are understood. A payload
without a header (a foreign publisher) is taken as an encoded image.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emberflow.protocol.errors import Code
from emberflow.unit import UnitError
from emberflow.vision.image import DEFAULT_MAX_PIXELS, decode

RAW_FORMATS = {"bgr24": 3, "rgb24": 3, "yuyv422": 2}


def header(width: int, height: int, fmt: str, seq: int, captured: float) -> dict[str, Any]:
    return {"width": width, "height": height, "format": fmt, "seq": seq, "captured": captured}


def to_rgb(data: Any, payload: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The RGB image of a frame (header + payload), with the same errors as client images."""
    info = data if isinstance(data, dict) else {}
    fmt = info.get("format", "jpeg")
    if fmt not in RAW_FORMATS:
        return decode(payload, max_pixels)
    w, h = int(info.get("width", 0)), int(info.get("height", 0))
    if w <= 0 or h <= 0 or w * h > max_pixels:
        raise UnitError(Code.PARAMETER, detail=f"frame size {w}x{h} is out of range")
    need = w * h * RAW_FORMATS[fmt]
    if len(payload) != need:
        raise UnitError(Code.PARAMETER, detail=f"a {w}x{h} {fmt} frame is {need} bytes, got {len(payload)}")
    pixels = np.frombuffer(payload, np.uint8)
    if fmt == "yuyv422":
        import cv2

        return cv2.cvtColor(pixels.reshape(h, w, 2), cv2.COLOR_YUV2RGB_YUYV)
    img = pixels.reshape(h, w, 3)
    return img[..., ::-1] if fmt == "bgr24" else img
