"""Flow files: units, their setup parameters, and links with a queue policy each (dora-style).

    units:
      asr:
        unit: asr                       # unit kind
        params: {model: whisper-tiny.en}
        inputs: [{from: audio, policy: lossless}, kws]

Everything is checked before anything starts: unknown unit kinds, inputs naming nothing,
policies other than lossless/latest, and cycles all fail with the line to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emberflow.errors import EmberflowError

BUILTIN = Path(__file__).parent / "builtin"
POLICIES = ("lossless", "latest")


class FlowError(EmberflowError, ValueError):
    pass


@dataclass
class Link:
    source: str  # a unit name in the flow
    policy: str = "lossless"


@dataclass
class UnitSpec:
    name: str
    unit: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: list[Link] = field(default_factory=list)


@dataclass
class Flow:
    name: str
    units: dict[str, UnitSpec]
    description: str = ""

    def order(self) -> list[UnitSpec]:
        """Units in dependency order (sources before the units that read them)."""
        done: list[str] = []
        visiting: set[str] = set()

        def visit(name: str, path: list[str]) -> None:
            if name in done:
                return
            if name in visiting:
                raise FlowError(f"flow {self.name!r}: cycle {' -> '.join(path + [name])}")
            visiting.add(name)
            for link in self.units[name].inputs:
                visit(link.source, path + [name])
            visiting.discard(name)
            done.append(name)

        for name in self.units:
            visit(name, [])
        return [self.units[n] for n in done]


def find(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.is_file():
        return p
    builtin = BUILTIN / f"{name_or_path}.yaml"
    if builtin.is_file():
        return builtin
    known = ", ".join(sorted(f.stem for f in BUILTIN.glob("*.yaml")))
    raise FlowError(f"no flow file {name_or_path!r} (built-in flows: {known})")


def load(name_or_path: str | Path, known_units: set[str] | None = None) -> Flow:
    path = find(name_or_path)
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict) or not isinstance(raw.get("units"), dict) or not raw["units"]:
        raise FlowError(f"{path}: expected a mapping with a non-empty 'units' mapping")
    units: dict[str, UnitSpec] = {}
    for name, body in raw["units"].items():
        if not isinstance(body, dict) or not isinstance(body.get("unit"), str):
            raise FlowError(f"{path}: units.{name} needs `unit: <kind>`")
        if known_units is not None and body["unit"] not in known_units:
            raise FlowError(
                f"{path}: units.{name}: unknown unit kind {body['unit']!r} (known: {', '.join(sorted(known_units))})"
            )
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise FlowError(f"{path}: units.{name}.params must be a mapping")
        links = []
        for entry in body.get("inputs") or []:
            link = (
                Link(entry)
                if isinstance(entry, str)
                else Link(entry.get("from", ""), entry.get("policy", "lossless"))
                if isinstance(entry, dict)
                else None
            )
            if link is None or not link.source:
                raise FlowError(f"{path}: units.{name}.inputs: write a unit name or {{from: name, policy: lossless}}")
            if link.policy not in POLICIES:
                raise FlowError(f"{path}: units.{name}.inputs: policy {link.policy!r} is not one of {POLICIES}")
            links.append(link)
        units[name] = UnitSpec(name, body["unit"], params, links)
    for spec in units.values():
        for link in spec.inputs:
            if link.source not in units:
                raise FlowError(
                    f"{path}: units.{spec.name}.inputs names {link.source!r}, which is not a unit of this flow"
                )
    flow = Flow(str(raw.get("name", path.stem)), units, str(raw.get("description", "")))
    flow.order()  # raises on cycles
    return flow
