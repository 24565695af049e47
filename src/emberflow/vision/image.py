"""Images in: decoding client bytes strictly, and fitting them to a model's input (letterbox).

Every vision unit takes images through `decode`, so the limits and the errors are the same
everywhere, and as StackFlow's yolo answers them: empty data is -24, bytes that do not decode
(no image, or a truncated one) are -11 "Model run failed." with the reason in `detail`, and an
image over `max_pixels` is -22 before a single pixel is decompressed (a 40 MP JPEG would take
160 MB as RGB).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from emberflow.protocol.errors import Code
from emberflow.unit import UnitError

DEFAULT_MAX_PIXELS = 16_000_000


def decode(data: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, BMP, WebP...) -> RGB uint8 [H, W, 3]."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(data, str):
        raise UnitError(
            Code.JSON_FORMAT,
            "json format error.",
            detail="an image must be sent as base64 with an object containing 'base64' "
            "(e.g. yolo.jpeg.base64), or as a RAW frame",
        )
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UnitError(
            Code.JSON_FORMAT, "json format error.", detail=f"expected image bytes, got {type(data).__name__}"
        )
    if len(data) == 0:
        raise UnitError(Code.EMPTY_DATA, detail="the image is empty (0 bytes)")
    try:
        img: Any = Image.open(io.BytesIO(bytes(data)))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):  # no header PIL knows, or a cut one
        raise UnitError(
            Code.MODEL_RUN,
            detail=f"the data ({len(data)} bytes, starting {bytes(data[:8]).hex()}) "
            "is not an image (JPEG, PNG, BMP or WebP)",
        ) from None
    w, h = img.size
    if w * h > max_pixels:
        raise UnitError(
            Code.PARAMETER,
            detail=f"the image is {w}x{h} ({w * h / 1e6:.1f} MP); the limit is "
            f"{max_pixels / 1e6:.1f} MP (setup key max_pixels)",
        )
    try:
        img.load()  # PIL raises on truncated data, where OpenCV would silently fill the rest with grey
    except (OSError, SyntaxError, ValueError) as e:
        raise UnitError(
            Code.MODEL_RUN, detail=f"the {img.format or 'image'} data is damaged or truncated: {e}"
        ) from None
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise UnitError(Code.MODEL_RUN, detail="JPEG encoding failed")
    return buf.tobytes()


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into a model input: scaled by `scale`, then shifted by the padding."""

    scale: float
    pad_x: int
    pad_y: int
    width: int  # of the original image
    height: int

    def to_image(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model-input pixel coordinates -> original image pixels, clipped to the image."""
        return (
            np.clip((x - self.pad_x) / self.scale, 0, self.width),
            np.clip((y - self.pad_y) / self.scale, 0, self.height),
        )


def letterbox(
    rgb: np.ndarray, width: int, height: int, fill: tuple[int, int, int] = (0, 0, 0)
) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad to width x height (centred), so boxes map back exactly."""
    import cv2

    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    px, py = (width - nw) // 2, (height - nh) // 2
    out = np.empty((height, width, 3), np.uint8)
    out[:] = fill
    out[py : py + nh, px : px + nw] = resized
    return out, Letterbox(scale, px, py, w, h)
