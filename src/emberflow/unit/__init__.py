"""The public unit SDK: subclass `Unit`, declare `Params`, `inputs`, `outputs`, implement `setup`
and `infer`. See emberflow.unit.base for the full contract."""

from emberflow.protocol.errors import Code
from emberflow.unit.base import IO, Chunk, Final, TaskContext, Unit, UnitError, UnitParams, action, descriptor_field

__all__ = [
    "IO",
    "Chunk",
    "Code",
    "Final",
    "TaskContext",
    "Unit",
    "UnitError",
    "UnitParams",
    "action",
    "descriptor_field",
]
