"""What the image units (yolo, classify, ocr) share: images from clients (base64, RAW frames,
stream chunks) and frames from a linked camera, decoded once, analysed, and rendered in the
task's response format.

Client images are answered in order on the task thread. Camera frames go through `LatestOnly`
(see there): StackFlow's yolo also keeps at most a few frames and drops the rest; here every
drop is counted in taskinfo (`unit.frames`), with capture-to-result latency percentiles.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from emberflow.protocol.errors import StackFlowError
from emberflow.unit import IO, Unit, UnitParams
from emberflow.vision import frames
from emberflow.vision.image import DEFAULT_MAX_PIXELS, decode
from emberflow.vision.latest import LatestOnly, now

FRAME_ERROR_EVERY_S = 5.0  # bad camera frames are all counted, but reported to the client at most this often


class ImageParams(UnitParams):
    max_pixels: int = Field(
        DEFAULT_MAX_PIXELS,
        ge=1,
        le=200_000_000,
        description="Larger images are refused (-22) before they are decompressed.",
    )
    n_threads: int = Field(1, ge=0, le=64, description="onnxruntime threads per run; 0 = one per core.")


class ImageUnit(Unit):
    """Base of the image units; subclasses implement `load`, `analyse` and `render`."""

    inputs = {"image": IO.IMAGE}
    outputs = {"result": IO.JSON}
    params: Any

    # --- what a subclass provides ------------------------------------------------------------
    def load(self, params: Any) -> None:
        raise NotImplementedError

    def analyse(self, rgb: np.ndarray) -> Any:
        raise NotImplementedError

    def render(self, result: Any) -> Any:
        """The output for one image: a whole value, or an iterator (one stream chunk per item)."""
        raise NotImplementedError

    # --- the SDK hooks -----------------------------------------------------------------------
    def setup(self, params: Any) -> None:
        self.params = params
        self.load(params)
        self.images = self.bad_frames = 0
        self.last_frame_error: str | None = None
        self._reported_at = -FRAME_ERROR_EVERY_S
        self.frames = LatestOnly(self._frame, name=f"{self.kind}-frames")

    def teardown(self) -> None:
        frames_ = getattr(self, "frames", None)
        if frames_ is not None:
            frames_.close()

    def infer(self, data: Any) -> Any:
        rgb = decode(data, self.params.max_pixels)
        self.images += 1
        return self.render(self.analyse(rgb))

    def on_frame(self, frame: Any) -> Any:
        if frame.payload and (isinstance(frame.data, dict) or frame.object.startswith(("camera", "image"))):
            self.frames.submit(frame)  # a camera frame: newest only, on the frames thread
            return None
        return super().on_frame(frame)

    def _frame(self, frame: Any) -> None:
        try:
            result = self.render(self.analyse(frames.to_rgb(frame.data, frame.payload, self.params.max_pixels)))
        except StackFlowError as e:
            self.bad_frames += 1
            self.last_frame_error = e.detail or e.message
            if now() - self._reported_at >= FRAME_ERROR_EVERY_S:  # a broken source must not flood the client
                self._reported_at = now()
                err = e

                def fail() -> None:
                    raise err

                self.context.post(fail)  # reported like any inference error, on the task thread
            return
        captured = frame.data.get("captured") if isinstance(frame.data, dict) else None
        if isinstance(captured, (int, float)):
            self.frames.record_latency(now() - captured)
        self.context.post(lambda: result)

    def info(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "frames": {**self.frames.stats(), "bad": self.bad_frames, "last_error": self.last_frame_error},
        }
