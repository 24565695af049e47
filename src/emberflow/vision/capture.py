"""Frame sources for the camera unit: V4L2 devices, video files, RTSP/HTTP streams (OpenCV)."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from emberflow.unit import Code, UnitError

STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")


def list_devices() -> list[str]:
    """V4L2 capture devices, as StackFlow's list_camera answers: `/dev/video*`."""
    return sorted(glob.glob("/dev/video*"), key=lambda p: int(re.sub(r"\D", "", p) or 0))


_DEVICE = re.compile(r"^(/dev/video\d+|\d+)$")
_TASK = re.compile(r"^[\w-]+(\.\d+)?$")  # a work id or kind name (a link), not a file


def names_a_file(source: str) -> bool:
    """Whether opening `source` opens a file (what a client may only name under the file roots);
    a device path that is not /dev/videoN counts as a file."""
    if source.startswith(STREAM_SCHEMES):
        return False
    return not _DEVICE.match(source) and not _TASK.match(source)


def kind_of(source: str) -> str:
    if source.startswith(STREAM_SCHEMES):
        return "stream"
    if source.startswith("/dev/video") or source.isdigit():
        return "device"
    return "file"


def open_source(source: str, width: int, height: int, fps: float, open_timeout_s: float = 10.0) -> Any:
    """An opened cv2.VideoCapture, or a -5 error that says what exists on this machine."""
    import cv2

    kind = kind_of(source)
    if kind == "device":
        path = source if source.startswith("/dev/") else f"/dev/video{source}"
        if not os.path.exists(path):
            found = list_devices()
            raise UnitError(
                Code.MODEL_LOADING,
                detail=f"camera {path} does not exist; "
                + (
                    f"devices here: {', '.join(found)}"
                    if found
                    else "this machine has no camera (no /dev/video*): use a video file path, "
                    "an rtsp:// or http:// URL, "
                    "or push JPEG frames with input camera.jpeg.base64"
                ),
            )
        cap = cv2.VideoCapture(path, cv2.CAP_V4L2)
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
    elif kind == "file":
        if not Path(source).is_file():
            raise UnitError(Code.MODEL_LOADING, detail=f"video file {source!r} does not exist")
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG)
    else:
        cap = cv2.VideoCapture(
            source,
            cv2.CAP_FFMPEG,
            [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(open_timeout_s * 1000),
            ],
        )
    if not cap.isOpened():
        raise UnitError(Code.MODEL_LOADING, detail=f"cannot open {kind} {source!r} (OpenCV/FFmpeg could not read it)")
    return cap


def source_fps(cap: Any, default: float = 30.0) -> float:
    import cv2

    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if 1.0 <= fps <= 240.0 else default


def fit(bgr: np.ndarray, width: int, height: int) -> np.ndarray:
    """The frame at exactly width x height: scaled to fit, centred, black bars (no distortion)."""
    import cv2

    h, w = bgr.shape[:2]
    if (w, h) == (width, height):
        return bgr
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - nw) // 2, (height - nh) // 2
    out[y : y + nh, x : x + nw] = cv2.resize(
        bgr, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )
    return out
