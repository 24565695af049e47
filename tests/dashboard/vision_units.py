"""Stand-ins for the vision units (being built in their own issue), speaking StackFlow's camera
and yolo formats (spec §7.9, §7.10), so the dashboard's camera panel is tested end to end."""

from __future__ import annotations

import io
import threading
import time
from typing import Any, ClassVar

from pydantic import Field

from emberflow.unit import IO, Unit, UnitParams


def jpeg(width: int, height: int, seq: int) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (40, 60, 90))
    x = (seq * 7) % (width - 80)
    ImageDraw.Draw(img).rectangle([x, 40, x + 80, 140], fill=(230, 180, 60))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=70)
    return out.getvalue()


class CameraParams(UnitParams):
    response_format: str = "image.jpeg.base64"
    enoutput: bool = False
    frame_width: int = Field(320, ge=16, le=1920)
    frame_height: int = Field(240, ge=16, le=1080)
    fps: float = Field(10.0, gt=0, le=60)


class FakeCamera(Unit[CameraParams]):
    """A camera that films a moving yellow box."""

    kind = "camera"
    needs_model = False
    Params = CameraParams
    inputs: ClassVar = {"text": IO.TEXT}
    outputs: ClassVar = {"image": IO.IMAGE}

    def setup(self, params: CameraParams) -> None:
        self.p, self.seq, self._running = params, 0, True
        threading.Thread(target=self._film, daemon=True).start()

    def _film(self) -> None:
        while self._running:
            self.seq += 1
            frame = jpeg(self.p.frame_width, self.p.frame_height, self.seq)
            self.context.post(lambda frame=frame: self.context.emit("camera.raw", None, frame, client=False))
            time.sleep(1 / self.p.fps)

    def infer(self, text: str) -> None:
        return None

    def teardown(self) -> None:
        self._running = False


class YoloParams(UnitParams):
    response_format: str = "yolo.box"


class FakeYolo(Unit[YoloParams]):
    """Finds the yellow box in every camera frame."""

    kind = "yolo"
    needs_model = False
    Params = YoloParams
    inputs: ClassVar = {"image": IO.IMAGE}
    outputs: ClassVar = {"boxes": IO.JSON}

    def setup(self, params: YoloParams) -> None:
        self.frames = 0

    def on_frame(self, frame: Any) -> Any:
        if not frame.payload:
            return None
        self.frames += 1
        return [{"class": "box", "confidence": 0.9, "bbox": [20.0, 40.0, 100.0, 140.0]}]

    def infer(self, data: Any) -> Any:
        return []
