"""Build `.ember` bundles: graphs, stages, I/O descriptions, memory plans, quantization, provenance."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any

from emberflow.errors import EmberflowError
from emberflow.runtime.bundle import KIND_BLOB, KIND_MODEL, Section, read_bundle, write_bundle
from emberflow.toolchain.graph import Graph, device_dtypes, load_graph
from emberflow.toolchain.memplan import plan_memory

MAX_NAME = 24  # keeps section names like "graph/<name>/<stage>" within the 40-byte field


class PackError(EmberflowError, ValueError):
    pass


def parse_model_args(models: list[str]) -> list[tuple[str, Path]]:
    """`path` or `name=path`; the same name given twice makes stages of one net (like bmodel)."""
    out = []
    for m in models:
        name, sep, path = m.partition("=")
        if not sep:
            name, path = Path(m).stem, m
        if not name or len(name) > MAX_NAME or "/" in name:
            raise PackError(f"graph name {name!r}: use 1-{MAX_NAME} characters without '/' (write NAME=PATH)")
        if not Path(path).is_file():
            raise PackError(f"model file not found: {path}")
        out.append((name, Path(path)))
    return out


def parse_norms(specs: list[str]) -> dict[str, dict]:
    """`input=MEAN,.../STD,...` -> {input: {"mean": [...], "std": [...]}} (x_model = (x - mean) / std)."""
    norms = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        mean, slash, std = rest.partition("/")
        try:
            if not (sep and slash):
                raise ValueError
            norms[name] = {"mean": [float(v) for v in mean.split(",")], "std": [float(v) for v in std.split(",")]}
        except ValueError:
            raise PackError(
                f"bad --norm {spec!r}; write INPUT=MEAN[,MEAN...]/STD[,STD...], e.g. x=0.5,0.5,0.5/0.5,0.5,0.5"
            ) from None
    return norms


def _io(graph: Graph, names: list[str], norms: dict) -> list[dict]:
    rows = []
    for n in names:
        t = graph.tensors[n]
        row: dict[str, Any] = {"name": n, "shape": list(t.shape or []), "dtype": t.dtype}
        if t.quant:
            row["quant"] = t.quant
        if n in norms:
            row["normalization"] = norms[n]
        rows.append(row)
    return rows


def pack_models(
    models: list[str],
    output: str | Path,
    *,
    target: str | None = None,
    norms: list[str] | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> dict:
    from emberflow import __version__

    tgt = None
    if target:
        from emberflow.targets import load_target

        tgt = load_target(target)
    parsed = parse_model_args(models)
    norm_map = parse_norms(norms or [])
    graphs: dict[str, list[dict]] = {}
    sections: list[Section] = []
    for name, path in parsed:
        stage_index = len(graphs.setdefault(name, []))
        data = path.read_bytes()
        graph = load_graph(path, shapes, strict=False)
        fmt = graph.format
        plan = plan_memory(graph, dtypes=device_dtypes(graph))
        fit = None
        if tgt is not None:
            from emberflow.toolchain.check import check_model

            result = check_model(graph, plan, tgt)
            fit = {
                "fits": result.fits,
                "summary": result.summary(),
                "violations": [v.message for v in result.violations],
            }
        quant = {t.name: t.quant for t in graph.tensors.values() if t.quant}
        model_section = f"graph/{name}/{stage_index}"
        plan_section = f"plan/{name}/{stage_index}"
        quant_section = f"quant/{name}/{stage_index}"
        sections.append(Section(model_section, KIND_MODEL, data))
        sections.append(Section(plan_section, KIND_BLOB, json.dumps(plan.table()).encode()))
        if quant:
            sections.append(Section(quant_section, KIND_BLOB, json.dumps(quant).encode()))
        if stage_index and graphs[name][0]["format"] != fmt:
            raise PackError(
                f"stages of {name!r} mix {graphs[name][0]['format']} and {fmt}; stages of one net share a format"
            )
        graphs[name].append(
            {
                "index": stage_index,
                "section": model_section,
                "format": fmt,
                "inputs": _io(graph, graph.inputs, norm_map),
                "outputs": _io(graph, graph.outputs, {}),
                "weights_bytes": graph.weight_bytes,
                "memory_plan": {
                    "section": plan_section,
                    "strategy": plan.strategy,
                    "arena_bytes": plan.arena_bytes,
                    "lower_bound_bytes": plan.lower_bound_bytes,
                    "alignment": plan.alignment,
                },
                "quantization": {"section": quant_section, "tensors": len(quant)} if quant else None,
                "source": {"path": str(path), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
                "check": fit,
            }
        )
    shared = _share_stage_weights(graphs, sections)
    manifest = {
        "format": "emberflow-bundle",
        "graphs": [{"name": n, "stages": s} for n, s in graphs.items()],
        "target": target,
        "provenance": {
            "tool": f"emberflow {__version__}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(),
        },
    }
    size = write_bundle(output, manifest, sections)
    checks = [st["check"] for stages in graphs.values() for st in stages if st["check"]]
    return {
        "output": str(output),
        "bytes": size,
        "graphs": {n: len(s) for n, s in graphs.items()},
        "checks": [c["summary"] for c in checks],
        "shared_weight_bytes": shared,
    }


def _share_stage_weights(graphs: dict[str, list[dict]], sections: list[Section]) -> int:
    """Store weights common to all ONNX stages of a net once (like bmodel's shared coefficients).

    Each stage keeps its graph; initializers identical (name and bytes) in every stage move to
    one `weights/<net>` section, and the Engine puts them back when it loads a stage.
    Returns the bytes saved.
    """
    import onnx

    by_name = {sec.name: sec for sec in sections}
    saved = 0
    for net, stages in graphs.items():
        if len(stages) < 2 or stages[0]["format"] != "onnx":
            continue
        models = [onnx.load_from_string(by_name[st["section"]].data) for st in stages]
        first = {i.name: i.SerializeToString() for i in models[0].graph.initializer}
        common = set(first)
        for m in models[1:]:
            common &= {i.name for i in m.graph.initializer if first.get(i.name) == i.SerializeToString()}
        if not common:
            continue
        weights = onnx.ModelProto()
        weights.graph.initializer.extend(i for i in models[0].graph.initializer if i.name in common)
        for st, m in zip(stages, models):
            kept = [i for i in m.graph.initializer if i.name not in common]
            del m.graph.initializer[:]
            m.graph.initializer.extend(kept)
            before = len(by_name[st["section"]].data)
            by_name[st["section"]].data = m.SerializeToString()
            saved += before - len(by_name[st["section"]].data)
            st["shared_weights"] = f"weights/{net}"
        blob = weights.SerializeToString()
        saved -= len(blob)
        sections.append(Section(f"weights/{net}", KIND_BLOB, blob))
    return saved


def inspect_bundle(path: str | Path) -> dict:
    b = read_bundle(path)
    kinds = {1: "manifest", 2: "model", 3: "blob"}
    return {
        "path": b.path,
        "version": f"{b.version[0]}.{b.version[1]}",
        "bytes": b.size,
        "sections": [
            {"name": n, "kind": kinds.get(k, str(k)), "offset": off, "size": size, "crc32": f"{crc:08x}"}
            for n, (k, off, size, crc) in b.sections.items()
        ],
        "manifest": b.manifest,
    }
