"""Reading a TF.js graph model: `model.json` (a TensorFlow GraphDef written as JSON, plus a weights
manifest) and its `.bin` weight shards, with quantized weights dequantized to float32.

No TensorFlow needed: the GraphDef JSON is plain data. Attribute values keep TensorFlow's JSON
forms (`{"i": "2"}`, `{"list": {"i": [...]}}`, `{"s": base64}`), read through the helpers below.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emberflow.errors import EmberflowError


class TfjsError(EmberflowError, ValueError):
    """The TF.js model cannot be read or converted; the message names the node and what to do."""


# TensorFlow DataType enum names -> numpy dtypes (the ones TF.js graph models use)
TF_DTYPES: dict[str, Any] = {
    "DT_FLOAT": np.float32,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_BOOL": np.bool_,
    "DT_HALF": np.float16,
    "DT_UINT8": np.uint8,
    "DT_INT8": np.int8,
    "DT_DOUBLE": np.float64,
    "DT_INT16": np.int16,
    "DT_UINT16": np.uint16,
}
# weight manifest dtypes (`dtype`, and `quantization.dtype` of quantized weights)
MANIFEST_DTYPES: dict[str, Any] = {
    "float32": np.float32,
    "int32": np.int32,
    "bool": np.bool_,
    "float16": np.float16,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "int8": np.int8,
    "int16": np.int16,
}


@dataclass
class TfNode:
    name: str
    op: str
    inputs: list[str]  # tensor references "node" or "node:k"; control inputs ("^x") dropped
    attrs: dict[str, Any] = field(default_factory=dict)

    # --- attribute helpers (TensorFlow's JSON encoding of AttrValue) ---------------------
    def has(self, key: str) -> bool:
        return key in self.attrs

    def attr_int(self, key: str, default: int | None = None) -> int:
        v = self.attrs.get(key)
        if v is None or "i" not in v:
            if default is None:
                raise TfjsError(f"node {self.name!r} ({self.op}) lacks the integer attribute {key!r}")
            return default
        return int(v["i"])

    def attr_float(self, key: str, default: float) -> float:
        v = self.attrs.get(key)
        return float(v["f"]) if v is not None and "f" in v else default

    def attr_bool(self, key: str, default: bool = False) -> bool:
        v = self.attrs.get(key)
        return bool(v["b"]) if v is not None and "b" in v else default

    def attr_str(self, key: str, default: str = "") -> str:
        v = self.attrs.get(key)
        return base64.b64decode(v["s"]).decode() if v is not None and "s" in v else default

    def attr_ints(self, key: str, default: list[int] | None = None) -> list[int]:
        v = (self.attrs.get(key) or {}).get("list")
        if v is None or "i" not in v:
            return list(default or [])
        return [int(x) for x in v["i"]]

    def attr_strs(self, key: str) -> list[str]:
        v = (self.attrs.get(key) or {}).get("list") or {}
        return [base64.b64decode(s).decode() for s in v.get("s", [])]

    def attr_dtype(self, key: str, default: Any = np.float32) -> Any:
        v = self.attrs.get(key)
        if v is None or "type" not in v:
            return default
        try:
            return TF_DTYPES[v["type"]]
        except KeyError:
            raise TfjsError(f"node {self.name!r} ({self.op}): data type {v['type']} is not supported") from None


@dataclass
class TensorSig:
    name: str  # node name, without the ":0"
    dtype: Any
    shape: list[int | None]


@dataclass
class TfjsModel:
    path: Path
    nodes: list[TfNode]
    weights: dict[str, np.ndarray]
    inputs: list[TensorSig]
    outputs: list[str]  # tensor references, in signature order
    generated_by: str = ""
    converted_by: str = ""

    def node(self, name: str) -> TfNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


def load_tfjs(path: str | Path) -> TfjsModel:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TfjsError(f"{path}: not a readable TF.js model.json ({e})") from None
    if not isinstance(doc, dict) or "modelTopology" not in doc or "weightsManifest" not in doc:
        raise TfjsError(f"{path}: no modelTopology/weightsManifest: not a TF.js model.json")
    if doc.get("format") not in (None, "graph-model"):
        raise TfjsError(
            f"{path}: format {doc.get('format')!r} is a TF.js layers model; only graph models "
            "(tensorflowjs_converter --output_format tfjs_graph_model) are supported"
        )
    topology = doc["modelTopology"]
    if topology.get("library", {}).get("function"):
        raise TfjsError(f"{path}: the graph uses functions (control flow); only flat graphs are supported")
    nodes = [
        TfNode(n["name"], n["op"], [i for i in n.get("input", []) if not i.startswith("^")], n.get("attr", {}))
        for n in topology.get("node", [])
    ]
    weights = _read_weights(path, doc["weightsManifest"])
    inputs = [
        TensorSig(n.name, n.attr_dtype("dtype"), _shape(n.attrs.get("shape", {}).get("shape")))
        for n in nodes
        if n.op == "Placeholder"
    ]
    signature = doc.get("signature") or (doc.get("userDefinedMetadata") or {}).get("signature") or {}
    for sig in (signature.get("inputs") or {}).values():  # the signature may fix sizes the graph leaves open
        shape = _shape(sig.get("tensorShape"))
        for inp in inputs:
            if sig.get("name", "").split(":")[0] == inp.name and len(shape) == len(inp.shape):
                inp.shape = [a if a is not None else b for a, b in zip(shape, inp.shape)]
    outputs = [o.get("name", key) for key, o in (signature.get("outputs") or {}).items()]
    if not outputs:  # no signature: the nodes nobody reads
        used = {ref.split(":")[0] for n in nodes for ref in n.inputs}
        outputs = [n.name for n in nodes if n.name not in used and n.op not in ("Const", "Placeholder")]
    return TfjsModel(
        path, nodes, weights, inputs, outputs, str(doc.get("generatedBy", "")), str(doc.get("convertedBy", ""))
    )


def _shape(shape: dict | None) -> list[int | None]:
    if not shape or shape.get("unknownRank"):
        return []
    return [None if int(d.get("size", -1)) < 0 else int(d["size"]) for d in shape.get("dim", [])]


def _read_weights(model_path: Path, manifest: list[dict]) -> dict[str, np.ndarray]:
    """Every weight of every group, in manifest order: TF.js reads the concatenated shards of all
    groups as one buffer, each weight right after the previous one."""
    chunks = []
    for group in manifest:
        for rel in group.get("paths", []):
            shard = model_path.parent / rel
            try:
                chunks.append(shard.read_bytes())
            except OSError as e:
                raise TfjsError(
                    f"weight shard {shard} is missing ({e.strerror}); it must sit beside {model_path.name}"
                ) from None
    blob = b"".join(chunks)
    weights: dict[str, np.ndarray] = {}
    offset = 0
    for spec in (w for group in manifest for w in group.get("weights", [])):
        name, shape = spec["name"], [int(d) for d in spec.get("shape", [])]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        quant = spec.get("quantization")
        stored = MANIFEST_DTYPES.get((quant or {}).get("dtype") or spec["dtype"])
        if stored is None:
            raise TfjsError(f"weight {name!r}: dtype {spec['dtype']!r} is not supported")
        size = count * np.dtype(stored).itemsize
        if offset + size > len(blob):
            raise TfjsError(
                f"weight {name!r} ends at byte {offset + size}, but the shards hold {len(blob)}: "
                "truncated or mismatched .bin files"
            )
        raw = np.frombuffer(blob, stored, count, offset).reshape(shape)
        offset += size
        weights[name] = _dequantize(name, raw, spec, quant)
    return weights


def _dequantize(name: str, raw: np.ndarray, spec: dict, quant: dict | None) -> np.ndarray:
    target = MANIFEST_DTYPES.get(spec["dtype"], np.float32)
    if quant is None:
        return raw.copy()
    if quant["dtype"] == "float16":
        return raw.astype(np.float32)
    if "scale" in quant:  # affine uint8/uint16: value = min + scale * q
        values = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant.get("min", 0.0))
        return np.round(values).astype(target) if np.dtype(target).kind in "iu" else values.astype(target)
    raise TfjsError(f"weight {name!r}: quantization {quant} is not supported")
