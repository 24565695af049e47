"""A KServe/Triton-style model repository of tensor models, served by the Engine in-process.

    models/
      digits/
        config.yaml          # optional: max_batch_size, max_queue_delay_ms, instances, max_queue, timeout_s
        1/model.onnx         # numbered version folders; any one .onnx / .tflite / .ember file inside
        2/model.ember

Every numbered version is loaded; requests without a version get the highest. The directory is
polled: new, changed and removed models are loaded, reloaded and unloaded without a restart, and a
failed reload keeps the previous version serving (as Triton's poll mode does). Explicit
`load`/`unload` (the repository extension) work too; an unloaded model stays unloaded until it is
loaded again.

Tensor models run here, in the daemon, not in a unit process: a batch costs one thread hop
instead of a ZeroMQ round trip plus a JSON encoding of every tensor (docs/serving.md has the
measurements), and onnxruntime releases the GIL, so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emberflow.serving.batching import Batcher, BatchPolicy
from emberflow.serving.metrics import Metrics

log = logging.getLogger("emberflow.serving.repository")

MODEL_FILES = (".onnx", ".tflite", ".ember")
POLL_SECONDS = float(os.environ.get("EMBERFLOW_REPOSITORY_POLL_S", "1.0"))


@dataclass
class ModelVersion:
    name: str
    version: str
    path: Path
    engine: Any
    batcher: Batcher
    inputs: list[Any]
    outputs: list[Any]
    platform: str


@dataclass
class ModelEntry:
    name: str
    state: str = "UNAVAILABLE"  # READY | LOADING | UNAVAILABLE
    reason: str = ""
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    signature: tuple = ()
    explicit_unload: bool = False

    def latest(self) -> ModelVersion | None:
        if not self.versions:
            return None
        return self.versions[max(self.versions, key=int)]


class ModelRepository:
    def __init__(self, root: str | os.PathLike | None, metrics: Metrics):
        self.root = Path(root).expanduser() if root else None
        self.metrics = metrics
        self.models: dict[str, ModelEntry] = {}
        self._poller: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        metrics.add_depth_source(self.queue_depth)

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self.root is None:
            return
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"model_repository {self.root} is not a directory: create it, with one "
                "folder per model holding numbered version folders (see docs/serving.md)"
            )
        await self.scan()
        self._poller = asyncio.create_task(self._poll())

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        for entry in self.models.values():
            await self._drop_versions(entry)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self.scan()
            except Exception:
                log.exception("repository poll failed")

    # --- queries --------------------------------------------------------------------------
    def loading(self) -> list[str]:
        return [n for n, e in self.models.items() if e.state == "LOADING"]

    def queue_depth(self) -> dict[str, int]:
        return {f"{v.name}/{v.version}": v.batcher.depth() for e in self.models.values() for v in e.versions.values()}

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        entry = self.models.get(name)
        if entry is None or entry.state != "READY":
            raise LookupError(
                f"model {name!r} is not {'ready' if entry else 'in the repository'}"
                + (f": {entry.reason}" if entry and entry.reason else "")
            )
        mv = entry.versions.get(version) if version else entry.latest()
        if mv is None:
            raise LookupError(f"model {name!r} has no version {version!r}; versions: {sorted(entry.versions, key=int)}")
        return mv

    def index(self) -> list[dict[str, Any]]:
        out = []
        for name in sorted(self._on_disk() | set(self.models)):
            entry = self.models.get(name)
            if entry is None or not entry.versions:
                out.append(
                    {
                        "name": name,
                        "state": entry.state if entry else "UNAVAILABLE",
                        "reason": entry.reason if entry else "not loaded",
                    }
                )
                continue
            for v in sorted(entry.versions, key=int):
                out.append({"name": name, "version": v, "state": entry.state, "reason": entry.reason})
        return out

    # --- loading --------------------------------------------------------------------------
    def _on_disk(self) -> set[str]:
        if self.root is None or not self.root.is_dir():
            return set()
        return {p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")}

    def _signature(self, name: str) -> tuple:
        """What the poller compares: every file of the model with its size and mtime."""
        assert self.root is not None  # no directory: no models to sign
        base = self.root / name
        files = []
        for p in sorted(base.rglob("*")):
            if p.is_file():
                st = p.stat()
                files.append((str(p.relative_to(base)), st.st_size, st.st_mtime_ns))
        return tuple(files)

    async def scan(self) -> None:
        async with self._lock:
            present = self._on_disk()
            for name in present:
                entry = self.models.get(name)
                sig = self._signature(name)
                if entry is not None and (entry.explicit_unload or entry.signature == sig):
                    continue
                await self._load(name, sig)
            for name in list(self.models):
                if name not in present:
                    log.info("model %s removed from the repository: unloading", name)
                    await self._drop_versions(self.models.pop(name))

    async def load(self, name: str) -> None:
        async with self._lock:
            if name not in self._on_disk():
                raise LookupError(f"no folder {name!r} in the model repository {self.root}")
            entry = self.models.get(name)
            if entry is not None:
                entry.explicit_unload = False
            await self._load(name, self._signature(name), force=True)

    async def unload(self, name: str) -> None:
        async with self._lock:
            entry = self.models.get(name)
            if entry is None:
                raise LookupError(f"model {name!r} is not loaded")
            await self._drop_versions(entry)
            entry.state, entry.reason, entry.explicit_unload = "UNAVAILABLE", "unloaded", True

    async def _load(self, name: str, signature: tuple, force: bool = False) -> None:
        entry = self.models.setdefault(name, ModelEntry(name))
        previous_state = entry.state
        entry.state = "LOADING"
        try:
            versions = await asyncio.get_running_loop().run_in_executor(None, self._build, name)
        except Exception as e:
            log.error("loading model %s failed: %s", name, e)
            entry.signature = signature
            if entry.versions and previous_state == "READY":
                entry.state, entry.reason = "READY", f"reload failed, still serving the previous version: {e}"
            else:
                entry.state, entry.reason = "UNAVAILABLE", str(e)
            return
        old = entry.versions
        entry.versions, entry.signature = versions, signature
        entry.state, entry.reason = "READY", ""
        for mv in old.values():
            await mv.batcher.close()
        log.info("model %s ready (versions %s)", name, sorted(versions, key=int))

    def _build(self, name: str) -> dict[str, ModelVersion]:
        from emberflow.runtime import Engine

        assert self.root is not None  # no directory: no models to build
        base = self.root / name
        policy = BatchPolicy.from_dict(_read_config(base))
        versions: dict[str, ModelVersion] = {}
        for vdir in sorted(p for p in base.iterdir() if p.is_dir() and p.name.isdigit()):
            files = sorted(p for p in vdir.iterdir() if p.suffix.lower() in MODEL_FILES)
            if not files:
                continue
            if len(files) > 1:
                raise ValueError(f"{vdir} holds {len(files)} model files; keep exactly one")
            engine = Engine(files[0])
            graph = next(iter(engine.graphs.values()))
            first_dims = [spec.shape[0] if spec.shape else 1 for spec in graph.inputs]
            batchable = all(d is None or (isinstance(d, str)) or d == -1 for d in first_dims)

            def execute(inputs: list, _engine: Any = engine) -> list:
                return _engine(inputs)

            label = f"{name}/{vdir.name}"

            def on_batch(rows: int, seconds: float, _label: str = label) -> None:
                self.metrics.batch_size.labels(_label).observe(rows)
                self.metrics.inference_seconds.labels(_label).observe(seconds)

            versions[vdir.name] = ModelVersion(
                name,
                vdir.name,
                files[0],
                engine,
                Batcher(execute, policy, batchable, on_batch),
                list(graph.inputs),
                list(graph.outputs),
                "onnxruntime_onnx" if files[0].suffix == ".onnx" else f"emberflow_{files[0].suffix.lstrip('.')}",
            )
        if not versions:
            raise ValueError(
                f"{base} has no numbered version folder with a model file "
                f"({', '.join(MODEL_FILES)}); e.g. {base}/1/model.onnx"
            )
        return versions

    async def _drop_versions(self, entry: ModelEntry) -> None:
        for mv in entry.versions.values():
            await mv.batcher.close()
        entry.versions = {}


def _read_config(base: Path) -> dict[str, Any]:
    for name in ("config.yaml", "config.yml", "config.json"):
        p = base / name
        if p.is_file():
            if p.suffix == ".json":
                data = json.loads(p.read_text())
            else:
                import yaml

                data = yaml.safe_load(p.read_text()) or {}
            if not isinstance(data, dict):
                raise ValueError(f"{p}: expected a mapping")
            return data
    return {}
