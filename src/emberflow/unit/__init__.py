"""The public unit SDK: subclass `Unit`, declare `Params`, `inputs`, `outputs`, implement `setup`
and `infer`. See emberflow.unit.base for the full contract."""

from emberflow.unit.base import IO, Final, TaskContext, Unit, UnitError, UnitParams
from emberflow.protocol.errors import Code

__all__ = ["IO", "Code", "Final", "TaskContext", "Unit", "UnitError", "UnitParams"]
