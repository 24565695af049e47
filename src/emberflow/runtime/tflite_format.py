"""Reading `.tflite` flatbuffers (the schema's object API), shared by the runtime's TFLite-Micro
backend and the toolchain. The schema comes with the `tflite-micro` package, imported lazily."""

from __future__ import annotations

from typing import Any

from emberflow.errors import EmberflowError


class ModelError(EmberflowError, ValueError):
    """A model file cannot be read or understood; the message says what to do."""


TFL_DTYPES = {  # schema TensorType -> numpy names
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    5: "string",
    6: "bool",
    7: "int16",
    9: "int8",
    10: "float64",
    12: "uint64",
    13: "resource",
    14: "variant",
    15: "uint32",
    16: "uint16",
}


def tflite_schema() -> Any:
    try:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelError("reading .tflite needs the tflite-micro package: pip install 'emberflow[toolchain]'") from exc
    return schema


def read_tflite_model(buf: bytes) -> Any:
    """Parse a .tflite flatbuffer into the schema's object API (ModelT)."""
    schema = tflite_schema()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelError("not a .tflite flatbuffer (missing the TFL3 identifier)")
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))


def tflite_op_names() -> dict[int, str]:
    schema = tflite_schema()
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def tflite_op_types(model: Any) -> list[str]:
    """The op type of each entry of a model's operator-code table: the builtin's name from the
    schema, or CUSTOM:<name>."""
    names = tflite_op_names()
    types = []
    for code in model.operatorCodes or []:
        # builtins past 127 live in builtinCode, older files use only the deprecated byte
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        op_type = names.get(builtin, f"BUILTIN_{builtin}")
        if op_type == "CUSTOM":
            op_type = f"CUSTOM:{code.customCode.decode() if code.customCode else '?'}"
        types.append(op_type)
    return types
