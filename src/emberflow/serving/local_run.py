"""`emberflow run-local PATH`: run a wrapper project's unit once, in-process, like AIGES's simulator.

Loads the unit named in PATH/emberflow.yaml, sets it up with sample/params.json, runs
sample/request.json through it (once, or as a stream), and checks every output against what
the unit declares: its `Result` model when it has one, else its declared output kinds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emberflow.unit.base import Unit


def load_project(path: Path) -> tuple[str, type, Path]:
    import importlib

    import yaml

    root = path if path.is_dir() else path.parent
    cfg_path = root / "emberflow.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: is {root} a project made by `emberflow create`?")
    units = (yaml.safe_load(cfg_path.read_text()) or {}).get("units") or {}
    if len(units) != 1:
        raise ValueError(f"{cfg_path}: `units:` must name exactly one unit, got {list(units)}")
    kind, target = next(iter(units.items()))
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module, _, attr = target.partition(":")
    return kind, getattr(importlib.import_module(module), attr), root


def check_output(cls: type[Unit], piece: Any) -> list[str]:
    """Problems with one output piece, judged against the unit's declaration."""
    from pydantic import ValidationError

    from emberflow.unit.base import IO

    result_model = getattr(cls, "Result", None)
    if result_model is not None:
        try:
            result_model.model_validate(piece)
        except ValidationError as e:
            return [f"{err['loc']}: {err['msg']}" for err in e.errors()]
        return []
    kinds = set(cls.outputs.values())
    if kinds & {IO.TEXT, IO.TEXT_STREAM} and not isinstance(piece, str):
        return [f"declared text output, got {type(piece).__name__}"]
    try:
        json.dumps(piece)
    except TypeError as e:
        if not isinstance(piece, (bytes, bytearray)):
            return [f"output is not JSON-serialisable: {e}"]
    return []


def run_local(path: Path, stream: bool = False) -> int:
    from emberflow.unit.local import LocalTask

    kind, cls, root = load_project(path)
    params = json.loads((root / "sample" / "params.json").read_text())
    if stream:
        params["response_format"] = f"{kind}.json.stream"
    request = json.loads((root / "sample" / "request.json").read_text())
    try:
        with LocalTask(cls, params) as task:
            pieces = task.infer(request)
    except Exception as e:  # the simulator reports, it does not crash
        detail = getattr(e, "detail", None)
        print(f"run-local: {kind} failed: {type(e).__name__}: {detail or e}", file=sys.stderr)
        return 1
    problems = [f"output {i}: {p}" for i, piece in enumerate(pieces) for p in check_output(cls, piece)]
    if not pieces:
        problems.append("the unit produced no output")
    print(json.dumps({"kind": kind, "outputs": pieces}, indent=1, default=str))
    for p in problems:
        print(f"run-local: {p}", file=sys.stderr)
    print(
        f"run-local: {len(pieces)} output(s), {'INVALID' if problems else 'valid'} against the declared schema",
        file=sys.stderr,
    )
    return 1 if problems else 0


def main(file: str) -> int:
    return run_local(Path(file).resolve().parent, stream="--stream" in sys.argv)
