"""The Models panel: the catalogue, and toolchain reports (`analyze`, `check --target`) for a
model file the person picks, as the toolchain's own self-contained HTML.

A report runs `emberflow analyze|check` in a child process: a model that takes long or breaks
the parser cannot stall or crash the daemon, and the daemon's loop keeps serving meanwhile.
Only files the dashboard listed (or the person uploaded) can be named, by id: the API takes no
paths.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emberflow.models.catalogue import Catalogue

MODEL_SUFFIXES = (".onnx", ".tflite")
REPORT_TIMEOUT = 300.0  # seconds; a big ONNX graph is analysed in tens of seconds here
MAX_LISTED = 200
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ModelFile:
    id: str
    name: str
    source: str  # catalogue | repository | sandbox | uploaded
    path: Path

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "source": self.source, "bytes": self.path.stat().st_size}


def _file(path: Path, source: str, name: str | None = None) -> ModelFile:
    ident = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return ModelFile(ident, name or path.name, source, path)


def catalogue_rows(catalogue: Catalogue) -> list[dict[str, Any]]:
    rows = []
    for desc in catalogue.models.values():
        rows.append(
            {
                "mode": desc["mode"],
                "type": desc.get("type"),
                "installed": catalogue.is_installed(desc),
                "default": bool(desc.get("default")),
                "aliases": catalogue.aliases_of(desc["mode"]),
                "package": (desc.get("package") or {}).get("name") or desc.get("requires_binary"),
            }
        )
    return sorted(rows, key=lambda r: (r["type"] or "", r["mode"]))


class Reports:
    def __init__(self, catalogue: Catalogue, sandbox: Path, repository: str | None):
        self.catalogue, self.sandbox = catalogue, sandbox
        self.repository = Path(repository).expanduser() if repository else None
        self._uploads = Path(tempfile.mkdtemp(prefix="emberflow-dashboard-models-"))
        self._uploaded: dict[str, ModelFile] = {}

    def files(self) -> list[ModelFile]:
        """Model files on the box a report can be made of."""
        found: dict[str, ModelFile] = {}
        for desc in self.catalogue.models.values():
            path = self.catalogue.weights_path(desc) if self.catalogue.is_installed(desc) else None
            if path is not None and path.is_file() and path.suffix in MODEL_SUFFIXES:
                f = _file(path, "catalogue", f"{desc['mode']} ({path.name})")
                found[f.id] = f
        for root, source in ((self.repository, "repository"), (self.sandbox, "sandbox")):
            if root is not None and root.is_dir():
                for path in sorted(p for p in root.rglob("*") if p.suffix in MODEL_SUFFIXES)[:MAX_LISTED]:
                    f = _file(path, source, str(path.relative_to(root)))
                    found[f.id] = f
        found.update(self._uploaded)
        return list(found.values())[:MAX_LISTED]

    def upload(self, name: str, body: bytes) -> ModelFile:
        clean = SAFE_NAME.sub("_", Path(name).name)[:100] or "model.onnx"
        if not clean.endswith(MODEL_SUFFIXES):
            raise ValueError(f"a model file is .onnx or .tflite, not {name!r}")
        if not body:
            raise ValueError("the uploaded file is empty")
        digest = hashlib.sha256(body).hexdigest()[:12]
        path = self._uploads / f"{digest}-{clean}"
        path.write_bytes(body)
        f = _file(path, "uploaded", clean)
        self._uploaded[f.id] = f
        return f

    def find(self, file_id: str) -> ModelFile | None:
        return next((f for f in self.files() if f.id == file_id), None)

    async def report(self, file: ModelFile, kind: str, target: str | None, shapes: list[str]) -> dict[str, Any]:
        """`emberflow analyze` or `check --target`: its JSON result and its HTML report."""
        out = Path(tempfile.mkdtemp(prefix="emberflow-report-")) / "report.html"
        cmd = [sys.executable, "-m", "emberflow", kind, str(file.path), "--json", "--report", str(out)]
        if kind == "check":
            cmd += ["--target", target or "host"]
        for shape in shapes:
            cmd += ["--shape", shape]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), REPORT_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return {"ok": False, "error": f"the report took longer than {REPORT_TIMEOUT:.0f} s"}
        # check exits 1 when the model does not fit: still a report
        if not out.is_file():
            message = stderr.decode(errors="replace").strip().splitlines()
            return {"ok": False, "error": message[-1] if message else f"{kind} exited with {proc.returncode}"}
        html = out.read_text()
        out.unlink()
        out.parent.rmdir()
        try:
            result = json.loads(stdout)
        except ValueError:
            result = None
        return {
            "ok": True,
            "kind": kind,
            "file": file.public(),
            "target": target,
            "html": html,
            "fits": result.get("fits") if isinstance(result, dict) and kind == "check" else None,
        }
