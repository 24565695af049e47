"""KServe v2 datatypes <-> numpy, and the length-prefixed BYTES encoding, shared by REST and gRPC."""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from emberflow.errors import EmberflowError

T = TypeVar("T")
# Requests smaller than this are decoded on the event loop: a thread hop costs more than they do.
OFF_LOOP_BYTES = 64 * 1024
# Heavy decoding (a 16 MB JSON tensor, millions of BYTES elements) runs here, so the event loop
# keeps serving every other client meanwhile; two threads bound what such requests can take.
_DECODERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tensor-codec")

DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_NAMES = {v: k for k, v in DTYPES.items()}


class TensorError(EmberflowError, ValueError):
    """A malformed tensor in a request; the message names the tensor and what is wrong."""


async def off_loop(size: int, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)`: in a worker thread when the data is `size` bytes or more, else right here."""
    if size < OFF_LOOP_BYTES:
        return fn(*args)
    return await asyncio.get_running_loop().run_in_executor(_DECODERS, fn, *args)


def element_count(shape: list[int]) -> int:
    """Elements of a tensor shape, exactly (numpy's product wraps around past 2**63)."""
    return math.prod(shape)


def from_values(values: Any, datatype: str, shape: list[int], name: str) -> np.ndarray:
    """One tensor from JSON (or typed protobuf) values; a value the datatype cannot hold (INT8 1000)
    is the client's error, said as such."""
    try:
        arr = np.array(values, dtype=DTYPES[datatype]).reshape(-1)
    except (OverflowError, ValueError, TypeError) as e:
        raise TensorError(f"{name}: the data does not fit {datatype}: {e}") from None
    count = element_count(shape)
    if arr.size != count:
        raise TensorError(f"{name}: shape {shape} needs {count} elements, got {arr.size}")
    return arr.reshape(shape)


def to_datatype(dtype: np.dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype.kind in ("U", "S", "O"):
        return "BYTES"
    name = _NAMES.get(dtype.newbyteorder("=") if dtype.byteorder not in ("=", "|") else dtype)
    if name is None:
        raise TensorError(f"numpy dtype {dtype} has no KServe v2 datatype")
    return name


def decode_bytes(raw: bytes, count: int) -> np.ndarray:
    """BYTES elements on the wire: each a 4-byte little-endian length, then the bytes."""
    if count * 4 > len(raw):  # every element has at least its length prefix
        raise TensorError("BYTES tensor is truncated")
    out, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(raw):
            raise TensorError("BYTES tensor is truncated")
        (n,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + n > len(raw):
            raise TensorError("BYTES element overruns the tensor")
        out.append(raw[offset : offset + n])
        offset += n
    return np.array(out, dtype=object)


def encode_bytes(arr: np.ndarray) -> bytes:
    parts = []
    for item in arr.reshape(-1):
        b = item if isinstance(item, bytes) else str(item).encode()
        parts.append(struct.pack("<I", len(b)) + b)
    return b"".join(parts)


def order_inputs(by_name: dict[str, np.ndarray], expected: list[str], model: str) -> list[np.ndarray]:
    """The request's tensors in the model's input order; names must match exactly."""
    missing = [n for n in expected if n not in by_name]
    extra = [n for n in by_name if n not in expected]
    if missing or extra:
        raise TensorError(f"model {model} takes inputs {expected}; missing {missing}, unknown {extra}")
    return [by_name[n] for n in expected]


def from_raw(raw: bytes, datatype: str, shape: list[int], name: str) -> np.ndarray:
    """One tensor from its little-endian wire bytes (binary extension / gRPC raw contents)."""
    dtype = DTYPES.get(datatype)
    if dtype is None:
        raise TensorError(f"{name}: datatype {datatype!r} is not one of {sorted(DTYPES)}")
    if any(d < 0 for d in shape):
        raise TensorError(f"{name}: shape {shape} has a negative dimension")
    count = element_count(shape)
    if datatype == "BYTES":
        arr = decode_bytes(raw, count)
    else:
        if len(raw) != count * dtype.itemsize:
            raise TensorError(
                f"{name}: shape {shape} of {datatype} needs {count * dtype.itemsize} bytes, got {len(raw)}"
            )
        arr = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
    return arr.reshape(shape)


def to_raw(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr)
    if arr.dtype == object:
        return encode_bytes(arr)
    return np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
