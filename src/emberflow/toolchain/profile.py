"""Where does the time go? Measured per-op latency on this machine, plus an analytical estimate for a target.

Measured: onnxruntime's node profiler (kernel time per node, averaged over runs); for .tflite
only the whole invoke is timed (TFLite-Micro has no per-op timer in its Python API).
Estimated: per op, the slower of compute (MACC / peak MAC rate for its dtype) and memory traffic
(bytes in + weights + bytes out over the target's bandwidth), a roofline model like the vendor
static profilers use. It ranks layers and gives an order of magnitude, not a cycle count.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emberflow.targets import Target
from emberflow.toolchain.analyze import node_macc
from emberflow.toolchain.graph import Graph, device_dtypes


@dataclass
class OpTime:
    name: str
    op: str
    measured_us: float | None = None
    estimated_us: float | None = None
    macc: int = 0
    bytes_moved: int = 0
    bound: str = ""  # "compute" or "memory" in the estimate


@dataclass
class ProfileResult:
    model: str
    runs: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    throughput_per_s: float
    peak_rss_mb: float
    target: str | None
    estimated_ms: float | None
    ops: list[OpTime] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def estimate(graph: Graph, target: Target) -> list[OpTime]:
    dtypes = device_dtypes(graph)
    out = []
    for node in graph.nodes:
        macc = node_macc(graph, node)
        moved = 0
        for name in node.inputs + node.outputs:
            t = graph.tensors.get(name)
            if t is None or not name or t.view_of_const:
                continue
            size = t.size or 0
            try:
                moved += size * np.dtype(dtypes.get(name, t.dtype)).itemsize
            except TypeError:
                moved += t.nbytes
        compute_dtype = dtypes.get(node.outputs[0], "float32") if node.outputs else "float32"
        t_compute = macc / target.peak_macs(compute_dtype)
        t_memory = moved / target.bandwidth_bytes_per_second
        out.append(
            OpTime(
                node.name,
                node.op_type,
                estimated_us=1e6 * max(t_compute, t_memory),
                macc=macc,
                bytes_moved=moved,
                bound="compute" if t_compute >= t_memory else "memory",
            )
        )
    return out


def measure_onnx(
    path: str, feeds: dict[str, np.ndarray], runs: int, optimized: bool = False
) -> tuple[list[float], dict[str, float], dict[str, str]]:
    """Per-run wall times (s) and mean kernel µs per node from onnxruntime's profiler.

    By default the session uses only basic graph optimisations, so nodes keep the names of the
    model file and the table lines up with `analyze`; `optimized` measures the fully fused graph
    (faster, but fused nodes carry onnxruntime's own names).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if not optimized:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.enable_profiling = True
    opts.log_severity_level = 4  # failures come back as exceptions with the same text
    with tempfile.TemporaryDirectory(prefix="emberflow-prof-") as tmp:
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        try:
            for _ in range(2):  # warm-up: first runs allocate and are not representative
                sess.run(None, feeds)
        except Exception as exc:
            raise ValueError(
                f"the model failed on these inputs ({str(exc).splitlines()[0][:200]}); pass --inputs file.npz with "
                "real inputs"
            ) from exc
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            times.append(time.perf_counter() - t0)
        trace = json.loads(Path(sess.end_profiling()).read_text())
    per_node: dict[str, float] = {}
    op_of: dict[str, str] = {}
    for ev in trace:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            node = ev["name"][: -len("_kernel_time")]
            per_node[node] = per_node.get(node, 0.0) + ev["dur"]
            op_of[node] = ev.get("args", {}).get("op_name", "")
    n = runs + 2
    return times, {k: v / n for k, v in per_node.items()}, op_of


def measure_tflite(path: str, feeds: list[np.ndarray], runs: int) -> list[float]:
    from emberflow.runtime import Engine

    engine = Engine(path)
    for _ in range(2):
        engine(feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        engine(feeds)
        times.append(time.perf_counter() - t0)
    return times


def profile_model(
    path: str | Path,
    graph: Graph,
    feeds: dict[str, np.ndarray],
    *,
    runs: int = 20,
    target: Target | None = None,
    optimized: bool = False,
) -> ProfileResult:
    path = str(path)
    ops = (
        estimate(graph, target)
        if target
        else [OpTime(n.name, n.op_type, macc=node_macc(graph, n)) for n in graph.nodes]
    )
    if graph.format == "onnx":
        times, per_node, op_of = measure_onnx(path, feeds, runs, optimized)
        by_name = {o.name: o for o in ops}
        for node, us in per_node.items():
            if node in by_name:
                by_name[node].measured_us = us
            else:  # onnxruntime fused or renamed it: keep the measurement under its own name
                ops.append(OpTime(node, op_of.get(node, "?"), measured_us=us))
    else:
        times = measure_tflite(path, [feeds[n] for n in graph.inputs], runs)
    arr = np.array(times) * 1e3
    return ProfileResult(
        model=path,
        runs=runs,
        mean_ms=float(arr.mean()),
        p50_ms=float(np.percentile(arr, 50)),
        p90_ms=float(np.percentile(arr, 90)),
        throughput_per_s=float(1e3 / arr.mean()),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        target=target.name if target else None,
        estimated_ms=sum(o.estimated_us or 0 for o in ops) / 1e3 if target else None,
        ops=ops,
    )


def chrome_trace(result: ProfileResult) -> dict:
    """Measured ops (pid 1) and the target estimate (pid 2) laid end to end, in Chrome's trace format."""
    events = []
    for pid, label, key in (
        (1, "host (measured, mean per run)", "measured_us"),
        (2, f"{result.target} (estimated)", "estimated_us"),
    ):
        t = 0.0
        events.append({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": label}})
        for o in result.ops:
            dur = getattr(o, key)
            if dur:
                events.append(
                    {
                        "ph": "X",
                        "pid": pid,
                        "tid": 1,
                        "name": o.name,
                        "cat": o.op,
                        "ts": t,
                        "dur": dur,
                        "args": {"op": o.op, "macc": o.macc},
                    }
                )
                t += dur
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def speedscope(result: ProfileResult) -> dict:
    frames: list[dict[str, str]] = []
    profiles: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for label, key in (("host measured", "measured_us"), (f"{result.target} estimated", "estimated_us")):
        evs, t = [], 0.0
        for o in result.ops:
            dur = getattr(o, key)
            if not dur:
                continue
            frame = index.setdefault(f"{o.op} {o.name}", len(index))
            if frame == len(frames):
                frames.append({"name": f"{o.op} {o.name}"})
            evs += [{"type": "O", "frame": frame, "at": t}, {"type": "C", "frame": frame, "at": t + dur}]
            t += dur
        if evs:
            profiles.append(
                {
                    "type": "evented",
                    "name": label,
                    "unit": "microseconds",
                    "startValue": 0,
                    "endValue": t,
                    "events": evs,
                }
            )
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": frames},
        "profiles": profiles,
        "name": result.model,
        "exporter": "emberflow",
    }
