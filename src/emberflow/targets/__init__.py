"""Device profiles: one TOML file per target, shipped here; users add their own.

A profile states memory regions (what each holds: weights and/or activations), supported ops
and dtypes, per-op size limits with a hint, and peak compute/bandwidth for the analytical
time estimate. Lookup order for a name: a path to a `.toml` file, `$EMBERFLOW_TARGETS`
(a directory), `~/.config/emberflow/targets`, then the profiles in this package.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from emberflow.errors import EmberflowError

BUILTIN_DIR = Path(__file__).parent


class TargetError(EmberflowError, ValueError):
    pass


@dataclass
class MemoryRegion:
    name: str
    kind: str
    bytes: int
    holds: list[str]
    note: str = ""


@dataclass
class OpLimit:
    ops: list[str]
    hint: str
    max_input_bytes: int | None = None
    max_weight_bytes: int | None = None
    max_output_bytes: int | None = None


@dataclass
class Target:
    name: str
    description: str
    kind: str
    dtypes: list[str]
    supported_ops: list[str]
    memory: list[MemoryRegion]
    macs_per_second: dict[str, float]
    bandwidth_bytes_per_second: float
    cpu: str = ""
    limits: list[OpLimit] = field(default_factory=list)
    path: str = ""

    def supports_op(self, op: str) -> bool:
        return "*" in self.supported_ops or op in self.supported_ops

    def regions_for(self, what: str) -> list[MemoryRegion]:
        return [m for m in self.memory if what in m.holds]

    def peak_macs(self, dtype: str) -> float:
        # An unknown dtype runs at the slowest listed rate: a pessimistic estimate is safer.
        return self.macs_per_second.get(dtype) or min(self.macs_per_second.values())


def search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("EMBERFLOW_TARGETS"):
        dirs.append(Path(os.environ["EMBERFLOW_TARGETS"]))
    dirs.append(Path.home() / ".config" / "emberflow" / "targets")
    dirs.append(BUILTIN_DIR)
    return dirs


def _parse(path: Path) -> Target:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TargetError(f"cannot read target profile {path}: {exc}") from exc
    try:
        compute = data.get("compute", {})
        return Target(
            name=data["name"],
            description=data.get("description", ""),
            kind=data.get("kind", ""),
            dtypes=list(data["dtypes"]),
            supported_ops=list(data["supported_ops"]),
            memory=[
                MemoryRegion(m["name"], m["kind"], int(m["bytes"]), list(m["holds"]), m.get("note", ""))
                for m in data["memory"]
            ],
            macs_per_second={k: float(v) for k, v in compute["macs_per_second"].items()},
            bandwidth_bytes_per_second=float(compute["bandwidth_bytes_per_second"]),
            cpu=compute.get("cpu", ""),
            limits=[OpLimit(**lim) for lim in data.get("limits", [])],
            path=str(path),
        )
    except (KeyError, TypeError) as exc:
        raise TargetError(
            f"target profile {path} is missing or has a bad field ({exc}); copy a shipped profile such as "
            f"{BUILTIN_DIR / 'stm32f412.toml'} and edit it"
        ) from exc


def list_targets() -> list[Target]:
    seen: dict[str, Target] = {}
    for d in reversed(search_dirs()):  # later (user) directories override the shipped ones
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                t = _parse(p)
                seen[t.name] = t
    return sorted(seen.values(), key=lambda t: t.name)


def load_target(name_or_path: str) -> Target:
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.is_file():
        return _parse(p)
    for d in search_dirs():
        candidate = d / f"{name_or_path}.toml"
        if candidate.is_file():
            return _parse(candidate)
    names = ", ".join(t.name for t in list_targets())
    raise TargetError(f"unknown target {name_or_path!r}; known targets: {names} (or pass a path to a .toml profile)")
