"""The classify unit: the ImageNet-1k classes of an image (EfficientNet-Lite0), top k.

Same conventions as yolo: images by inference (`classify.jpeg.base64`, `cv.jpeg.base64` RAW
frames, stream chunks) or every frame of a linked camera. `classify.json` answers
`[{"class": "espresso", "confidence": 0.96}, ...]`; `classify.json.stream` one chunk per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from emberflow.unit import Code, UnitError, descriptor_field
from emberflow.vision.imageunit import ImageParams, ImageUnit


class ClassifyParams(ImageParams):
    response_format: Literal["classify.json", "classify.json.stream"] = "classify.json"
    top_k: int = Field(5, ge=1, le=1000)
    labels_package: str = descriptor_field("", "Python package holding the label file.")
    labels_file: str = descriptor_field("", "Label file inside that package, or an absolute path.")


class ClassifyUnit(ImageUnit):
    """Image classification (ImageNet-1k)."""

    kind = "classify"
    max_tasks = 2
    Params = ClassifyParams
    model_path: Any = None

    def load(self, params: ClassifyParams) -> None:
        from emberflow.vision.classify import EfficientNetLite, load_labels

        if self.model_path is None:
            raise UnitError(
                Code.MODEL_LOADING, detail=f"model weights not found: run `emberflow models install {params.model}`"
            )
        self.model = EfficientNetLite(self.model_path, load_labels(_labels_path(params)), threads=params.n_threads)

    def analyse(self, rgb: Any) -> list[dict[str, Any]]:
        return [{"class": label, "confidence": round(p, 4)} for label, p in self.model(rgb, self.params.top_k)]

    def render(self, result: list[dict[str, Any]]) -> Any:
        return iter(result) if self.params.streams_output else result


def _labels_path(params: ClassifyParams) -> Path:
    from emberflow.models.catalogue import package_file

    path: Path | None = Path(params.labels_file).expanduser()
    if params.labels_package and path is not None and not path.is_absolute():
        path = package_file(params.labels_package, params.labels_file)
    if path is None or not path.is_file():
        raise UnitError(
            Code.MODEL_LOADING,
            detail=f"class names {params.labels_package}/{params.labels_file} not "
            f"found: run `emberflow models install {params.model}`",
        )
    return path
