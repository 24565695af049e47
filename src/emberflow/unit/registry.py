"""Where unit kinds come from: built-ins, `emberflow.units` entry points, or `module:Class` paths.

Only import paths live here, so sys can know every kind without importing any model runtime.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from emberflow.unit.base import Unit

BUILTIN_UNITS: dict[str, str] = {
    "llm": "emberflow.units.llm:LLMUnit",
    "embed": "emberflow.units.embed:EmbedUnit",
    "audio": "emberflow.units.audio:AudioUnit",
    "kws": "emberflow.units.kws:KWSUnit",
    "bargein": "emberflow.units.bargein:BargeInUnit",
    "vad": "emberflow.units.vad:VADUnit",
    "asr": "emberflow.units.asr:ASRUnit",
    "whisper": "emberflow.units.asr:WhisperUnit",
    "tts": "emberflow.units.tts:TTSUnit",
    "melotts": "emberflow.units.tts:MeloTTSUnit",
    "camera": "emberflow.units.camera:CameraUnit",
    "yolo": "emberflow.units.yolo:YoloUnit",
    "classify": "emberflow.units.classify:ClassifyUnit",
    "ocr": "emberflow.units.ocr:OCRUnit",
    "vlm": "emberflow.units.vlm:VLMUnit",
}


def known_units(extra: dict[str, str] | None = None) -> dict[str, str]:
    """kind -> 'module:Class' for every unit sys can start."""
    kinds = dict(BUILTIN_UNITS)
    for ep in entry_points(group="emberflow.units"):
        kinds.setdefault(ep.name, ep.value)
    kinds.update(extra or {})
    return kinds


def load_unit_class(kind: str, path: str | None = None) -> type[Unit]:
    path = path or known_units().get(kind)
    if path is None:
        raise LookupError(f"no unit of kind {kind!r}")
    module_name, _, attr = path.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Unit)):
        raise TypeError(f"{path} is not a Unit subclass: write `class {attr}(emberflow.unit.Unit): ...`")
    if cls.kind != kind:
        raise TypeError(f"{path} declares kind {cls.kind!r}, expected {kind!r}: set `kind = {kind!r}`")
    return cls
