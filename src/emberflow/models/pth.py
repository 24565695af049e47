"""Read a PyTorch checkpoint (`.pth`) into numpy arrays without torch and without unpickling
arbitrary code.

Two layouts exist. The zip one (torch >= 1.6): `<name>/data.pkl` names tensor storages kept as raw
files `<name>/data/<key>` in the same archive. The legacy one (what older checkpoints, such as
EfficientNet-Lite0's, use): several pickles back to back (magic number, protocol version, system
info, the object, the storage keys), then each storage as an int64 element count and its bytes.
Either way the object pickle may only name the few globals that rebuild tensors and ordered
dicts; anything else (a class that would run code on load) is refused.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np

from emberflow.errors import EmberflowError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "BFloat16Storage": np.uint16,
}


class CheckpointError(EmberflowError, ValueError):
    pass


@dataclass
class _Storage:
    key: str
    dtype: Any
    data: np.ndarray | None = None


@dataclass
class _Tensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        base = self.storage.data
        if base is None:
            raise CheckpointError(f"storage {self.storage.key} was never read")
        if not self.size:
            return base[self.offset : self.offset + 1].reshape(()).copy()
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(base[self.offset :], self.size, tuple(s * item for s in self.stride))
        return np.array(view)


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple, stride: tuple, *_: Any) -> _Tensor:
    return _Tensor(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data: _Tensor, *_: Any) -> _Tensor:
    return data


class _StorageType:
    def __init__(self, name: str):
        self.name = name


class _Unpickler(pickle.Unpickler):
    """Maps torch's rebuild functions to numpy placeholders; refuses every other global."""

    ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("collections", "OrderedDict"): OrderedDict,
    }

    def __init__(self, f: BinaryIO, storages: dict[str, _Storage]):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise CheckpointError(
            f"the checkpoint names {module}.{name}; only tensors and dicts are read "
            "(refusing to run code from a model file)"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {pid!r}")
        kind, key = pid[1], str(pid[2])
        dtype = STORAGE_DTYPES[kind.name] if isinstance(kind, _StorageType) else np.float32
        if key not in self.storages:
            self.storages[key] = _Storage(key, dtype)
        return self.storages[key]


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """name -> array of every tensor in the checkpoint (nested dicts are flattened with '.')."""
    path = Path(path)
    storages: dict[str, _Storage] = {}
    if zipfile.is_zipfile(path):
        obj = _load_zip(path, storages)
    else:
        with open(path, "rb") as f:
            obj = _load_legacy(f, storages)
    out: dict[str, np.ndarray] = {}
    _flatten(obj, "", out)
    if not out:
        raise CheckpointError(f"{path}: no tensors found")
    return out


def _load_zip(path: Path, storages: dict[str, _Storage]) -> Any:
    with zipfile.ZipFile(path) as z:
        pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise CheckpointError(f"{path}: a zip without data.pkl is not a PyTorch checkpoint")
        prefix = pkl[: -len("data.pkl")]
        obj = _Unpickler(io.BytesIO(z.read(pkl)), storages).load()
        for key, storage in storages.items():
            storage.data = np.frombuffer(z.read(f"{prefix}data/{key}"), storage.dtype)
    return obj


def _load_legacy(f: BinaryIO, storages: dict[str, _Storage]) -> Any:
    def plain() -> Any:
        return _Unpickler(f, {}).load()  # header pickles hold only numbers and dicts

    if plain() != LEGACY_MAGIC:
        raise CheckpointError("not a PyTorch checkpoint (bad magic number)")
    plain()  # protocol version
    plain()  # system info (endianness, type sizes)
    obj = _Unpickler(f, storages).load()
    keys = plain()
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise CheckpointError(f"storage {key} is listed but no tensor uses it")
        (count,) = struct.unpack("<q", f.read(8))
        size = count * np.dtype(storage.dtype).itemsize
        raw = f.read(size)
        if len(raw) != size:
            raise CheckpointError(f"storage {key}: file ends after {len(raw)} of {size} bytes (truncated)")
        storage.data = np.frombuffer(raw, storage.dtype)
    return obj


def _flatten(obj: Any, prefix: str, out: dict[str, np.ndarray]) -> None:
    if isinstance(obj, _Tensor):
        out[prefix.rstrip(".")] = obj.array()
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}{k}.", out)
