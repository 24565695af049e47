"""The ocr unit: text in an image, line by line, with boxes and scores (PP-OCRv5).

`ocr.json` answers `{"text": "line 1\nline 2", "lines": [{"text", "confidence", "box": [[x, y] x 4]}]}`,
`ocr.utf-8` only the text, and `ocr.json.stream` one chunk per line. Images come as for yolo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from emberflow.unit import Code, UnitError
from emberflow.vision.imageunit import ImageParams, ImageUnit


class OCRParams(ImageParams):
    response_format: Literal["ocr.json", "ocr.json.stream", "ocr.utf-8"] = "ocr.json"
    det: str = Field("det/det.onnx", description="Detection model, relative to the model directory.")
    rec: str = Field("rec/rec.onnx", description="Recognition model.")
    cls: str = Field("cls/cls.onnx", description="Text-angle classifier ('' to skip).")
    dictionary: str = Field("ppocrv5_dict.txt", description="Recognition character list.")
    limit_side: int = Field(960, ge=64, le=4096, description="Longest side the detector sees.")
    drop_score: float = Field(0.5, ge=0.0, le=1.0, description="Lines read with less confidence are dropped.")
    use_angle_cls: bool = Field(True, description="Also read lines the angle classifier finds upside down.")


class OCRUnit(ImageUnit):
    """Optical character recognition."""

    kind = "ocr"
    max_tasks = 1
    Params = OCRParams
    model_path: Any = None

    def load(self, params: OCRParams) -> None:
        from emberflow.vision.ocr import PPOCR

        if self.model_path is None:
            raise UnitError(
                Code.MODEL_LOADING, detail=f"model not found: run `emberflow models install {params.model}`"
            )
        root = Path(self.model_path)
        self.model = PPOCR(
            root / params.det,
            root / params.rec,
            root / params.dictionary,
            cls=root / params.cls if params.cls and params.use_angle_cls else None,
            threads=params.n_threads,
            limit_side=params.limit_side,
            drop_score=params.drop_score,
        )

    def analyse(self, rgb: Any) -> list[dict[str, Any]]:
        return [line.to_dict() for line in self.model(rgb)]

    def render(self, lines: list[dict[str, Any]]) -> Any:
        if self.params.streams_output:
            return iter(lines)
        text = "\n".join(line["text"] for line in lines)
        return text if self.params.response_format == "ocr.utf-8" else {"text": text, "lines": lines}
