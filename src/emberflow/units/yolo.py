"""The yolo unit (StackFlow §7.10): objects, people's poses or faces in images or camera frames.

StackFlow names its models yolo11n (detection), yolo11n-pose; they alias to what runs offline
here: NanoDet-m (COCO-80), MoveNet MultiPose, and BlazeFace for faces (`model_type` in the
descriptor picks the pipeline). Images come by inference (`yolo.jpeg.base64`, RAW frames with
`cv.jpeg.base64`, stream chunks) or from a linked `camera.N`. Outputs are exactly StackFlow's:
`yolo.box` (array, bbox x1,y1,x2,y2 to 2 decimals), `yolo.boxV2` (bbox x,y,w,h), their `.stream`
forms (one chunk per detection, then an empty finishing chunk); every image gets an answer, an
empty list when nothing is found. Boxes are in the original image's pixels (letterboxed input).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from emberflow.unit import Code, UnitError
from emberflow.vision.imageunit import ImageParams, ImageUnit


class YoloParams(ImageParams):
    response_format: Literal["yolo.box", "yolo.box.stream", "yolo.boxV2", "yolo.boxV2.stream"] = "yolo.box"
    model_type: Literal["detect", "pose", "face"] = Field("detect", description="Set by the model's descriptor.")
    pron_threshold: float = Field(0.3, ge=0.0, le=1.0, description="Score threshold (StackFlow's name).")
    nms_threshold: float = Field(0.5, ge=0.0, le=1.0, description="NMS IoU threshold.")


class YoloUnit(ImageUnit):
    """Object detection, multi-person pose and faces: StackFlow's yolo unit on offline models."""

    kind = "yolo"
    max_tasks = 2
    Params = YoloParams
    model_path: Any = None

    def load(self, params: YoloParams) -> None:
        if self.model_path is None:
            raise UnitError(
                Code.MODEL_LOADING, detail=f"model weights not found: run `emberflow models install {params.model}`"
            )
        if params.model_type == "pose":
            from emberflow.vision.pose import MoveNetMultiPose as Model
        elif params.model_type == "face":
            from emberflow.vision.face import BlazeFace as Model  # type: ignore[assignment]
        else:
            from emberflow.vision.detect import NanoDet as Model  # type: ignore[assignment]
        self.model = Model(self.model_path, threads=params.n_threads)
        self.v2 = params.response_format.startswith("yolo.boxV2")
        self.found = 0

    def analyse(self, rgb: Any) -> list[dict[str, Any]]:
        dets = self.model(rgb, self.params.pron_threshold, self.params.nms_threshold)
        self.found += len(dets)
        return [d.stackflow(self.v2) for d in dets]

    def render(self, result: list[dict[str, Any]]) -> Any:
        return iter(result) if self.params.streams_output else result

    def info(self) -> dict[str, Any]:
        return {**super().info(), "model_type": self.params.model_type, "detections": self.found}
