"""Rich tables for the toolchain commands (humans); `--json` output bypasses this module."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from rich.console import Console
from rich.table import Table

from emberflow.toolchain.fmt import fmt_bytes, fmt_count

if TYPE_CHECKING:
    from emberflow.toolchain.check import CheckResult
    from emberflow.toolchain.mcu.artifact import BuildRecord
    from emberflow.toolchain.mcu.footprint import Footprint

console = Console()


def print_analysis(summary: dict, rows: list[dict], plan: dict, *, layers: bool = True, plan_rows: int = 40) -> None:
    if layers:
        t = Table(title=f"Layers of {summary['model']}", show_lines=False)
        columns: tuple[tuple[str, Literal["left", "right"]], ...] = (
            ("#", "right"),
            ("name", "left"),
            ("op", "left"),
            ("output", "left"),
            ("params", "right"),
            ("MACC", "right"),
            ("weights", "right"),
            ("activations", "right"),
        )
        for col, just in columns:
            t.add_column(col, justify=just)
        for r in rows:
            t.add_row(
                str(r["index"]),
                r["name"][:40],
                r["op"],
                r["output_shape"],
                fmt_count(r["params"]),
                fmt_count(r["macc"]),
                fmt_bytes(r["weight_bytes"]),
                fmt_bytes(r["activation_bytes"]),
            )
        console.print(t)
    s = Table(title="Totals", show_header=False)
    s.add_column(justify="left")
    s.add_column(justify="right")
    s.add_row("format / nodes", f"{summary['format']} / {summary['nodes']}")
    for io in summary["inputs"]:
        s.add_row(f"input {io['name']}", f"{io['dtype']} {io['shape']}")
    for io in summary["outputs"]:
        s.add_row(f"output {io['name']}", f"{io['dtype']} {io['shape']}")
    s.add_row("params", fmt_count(summary["params"]))
    s.add_row("MACC", fmt_count(summary["macc"]))
    s.add_row("weights (ROM)", fmt_bytes(summary["weight_bytes"]))
    s.add_row(f"activation arena (RAM, planner '{plan['strategy']}')", fmt_bytes(plan["arena_bytes"]))
    s.add_row("lower bound (max live bytes)", fmt_bytes(plan["lower_bound_bytes"]))
    s.add_row("without reuse", fmt_bytes(plan["no_reuse_bytes"]))
    s.add_row("strategies tried", ", ".join(f"{k} {fmt_bytes(v)}" for k, v in plan["tried"].items()))
    if summary.get("sizes") != "build":
        s.add_row("flash/RAM", "estimates (weights, arena); exact: --target MCU or --compiled DIR")
    console.print(s)
    if plan_rows:
        p = Table(title=f"Memory plan (first {plan_rows} of {len(plan['table'])} tensors by offset)")
        for col in ("tensor", "offset", "life begin", "life end", "size"):
            p.add_column(col, justify="left" if col == "tensor" else "right")
        for r in plan["table"][:plan_rows]:
            p.add_row(r["tensor"][:48], str(r["offset"]), str(r["begin"]), str(r["end"]), str(r["size"]))
        console.print(p)
    for w in summary.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")


def _build_sections(b: BuildRecord) -> tuple[str, str]:
    """One line each for the flash and the RAM of a cross build, by section."""
    flash = (
        f"flash {fmt_bytes(b['model_flash'])} = weights+params {fmt_bytes(b['weights'])} + model code "
        f"{fmt_bytes(b['model_code'])} + runtime/kernels {fmt_bytes(b['runtime_and_kernels'])}"
    )
    ram = (
        f"RAM {fmt_bytes(b['model_ram'])} = arena {fmt_bytes(b['arena'])} + state {fmt_bytes(b['state'])} "
        f"+ model data/bss {fmt_bytes(b['model_data_bss'])} + kernel stack {b['kernel_stack']} B "
        f"({b['kernel_stack_function'] or '-'})"
    )
    return flash, ram


def print_footprint(fp: Footprint, target: str) -> None:
    """The compiled model's flash/RAM on `target` (analyze --target/--compiled)."""
    if fp.build is None:
        console.print(f"[yellow]flash/RAM on {target}:[/] {fp.how}")
        return
    t = Table(title=f"Flash/RAM on {target} ({fp.build['core']}), {fp.how}", show_header=False)
    t.add_column(justify="left")
    t.add_column(justify="right")
    b = fp.build
    for label, value in (
        ("weights + layer parameters (.nn_weights)", b["weights"]),
        ("model code (run function, API)", b["model_code"]),
        ("runtime + kernels (+ libc helpers)", b["runtime_and_kernels"]),
        ("flash, model total", b["model_flash"]),
        ("activation arena (.nn_data_act)", b["arena"]),
        ("streaming state (.nn_state)", b["state"]),
        ("model data/bss", b["model_data_bss"]),
        (f"deepest kernel frame ({b['kernel_stack_function'] or '-'})", b["kernel_stack"]),
        ("RAM, model total", b["model_ram"]),
    ):
        t.add_row(label, fmt_bytes(value))
    console.print(t)


def print_check(result: CheckResult) -> None:
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    if result.build is not None:
        flash, ram = _build_sections(result.build)
        console.print(f"sizes: {result.sizes_how}\n  {flash}\n  {ram}")
    elif result.sizes_how:
        console.print(f"sizes: {result.sizes_how}")
    if result.fits:
        console.print(f"[green]{result.summary()}[/]")
        return
    t = Table(title=f"{len(result.violations)} problem(s) on {result.target}")
    t.add_column("kind")
    t.add_column("problem")
    t.add_column("what to do")
    for v in result.violations:
        t.add_row(v.kind, v.message, v.hint)
    console.print(t)
    console.print(f"[red]{result.summary()}[/]")


def print_targets(targets) -> None:
    t = Table(title="Device profiles")
    for col in ("name", "kind", "compute", "weights memory", "RAM for activations", "dtypes", "file"):
        t.add_column(col)
    for tg in targets:
        w = max(tg.regions_for("weights"), key=lambda m: m.bytes, default=None)
        a = max(tg.regions_for("activations"), key=lambda m: m.bytes, default=None)
        t.add_row(
            tg.name,
            tg.kind,
            tg.cpu,
            f"{w.name} {fmt_bytes(w.bytes)}" if w else "-",
            f"{a.name} {fmt_bytes(a.bytes)}" if a else "-",
            ",".join(tg.dtypes),
            tg.path,
        )
    console.print(t)


def print_quantize(summary) -> None:
    t = Table(title=f"Quantized {summary.source}", show_header=False)
    t.add_column(justify="left")
    t.add_column(justify="right")
    t.add_row("output", summary.output)
    t.add_row("size before", fmt_bytes(summary.bytes_before))
    t.add_row("size after", f"{fmt_bytes(summary.bytes_after)} ({summary.ratio:.2f}x)")
    t.add_row("calibration", f"{summary.method}, {summary.calibration_samples} samples")
    t.add_row(
        "weights",
        ("per-channel" if summary.per_channel else "per-tensor")
        + " int8"
        + (" (reduced range)" if summary.reduce_range else ""),
    )
    t.add_row("QuantizeLinear nodes", str(summary.quantized_nodes))
    console.print(t)


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def print_validation(result) -> None:
    t = Table(title=f"{result.candidate} vs {result.reference} ({result.samples} samples)")
    cols = ("output", "acc", "rmse", "mae", "l2r", "mean", "std", "nse", "cos", "max abs")
    for c in cols:
        t.add_column(c, justify="left" if c == "output" else "right")
    for m in result.outputs:
        t.add_row(
            m.name,
            _fmt(m.acc),
            _fmt(m.rmse),
            _fmt(m.mae),
            _fmt(m.l2r),
            _fmt(m.mean),
            _fmt(m.std),
            _fmt(m.nse),
            _fmt(m.cos),
            _fmt(m.max_abs),
        )
    console.print(t)
    for m in result.outputs:
        if m.lsb_histogram:
            hist = ", ".join(f"{k:+d}: {v}" for k, v in sorted(m.lsb_histogram.items()))
            console.print(f"LSB differences of {m.name}: {hist}")
    if result.layers:
        p = Table(title="Per-layer comparison (topological order)")
        for c in ("tensor", "compared with", "shape", "cos", "max abs", "ok"):
            p.add_column(c)
        for r in result.layers:
            p.add_row(
                r["tensor"][:40],
                r["compared_with"][:40],
                "x".join(map(str, r["shape"])),
                _fmt(r["cos"]),
                _fmt(r["max_abs"]),
                "[green]yes[/]" if r["ok"] else "[red]no[/]",
            )
        console.print(p)
        if result.first_divergence:
            d = result.first_divergence
            console.print(f"[red]first divergence: {d['tensor']} (cos {d['cos']:.4f}, max abs {d['max_abs']:.4g})[/]")
        else:
            console.print(f"[green]all {len(result.layers)} compared tensors within tolerance[/]")


def print_bundle(info: dict) -> None:
    m = info["manifest"]
    console.print(
        f"[bold]{info['path']}[/]: format {info['version']}, {fmt_bytes(info['bytes'])}, "
        f"target {m.get('target') or '-'}, made by {m['provenance']['tool']} at {m['provenance']['created']}"
    )
    s = Table(title="Sections (CRC verified)")
    for c in ("name", "kind", "offset", "size", "crc32"):
        s.add_column(c, justify="left" if c in ("name", "kind") else "right")
    for sec in info["sections"]:
        s.add_row(sec["name"], sec["kind"], str(sec["offset"]), fmt_bytes(sec["size"]), sec["crc32"])
    console.print(s)
    g = Table(title="Graphs")
    for c in ("graph", "stage", "format", "inputs", "outputs", "weights", "arena", "source sha256"):
        g.add_column(c)
    for graph in m["graphs"]:
        for st in graph["stages"]:
            io = lambda rows: "\n".join(f"{r['name']}: {r['dtype']}{r['shape']}" for r in rows)
            g.add_row(
                graph["name"],
                str(st["index"]),
                st["format"],
                io(st["inputs"]),
                io(st["outputs"]),
                fmt_bytes(st["weights_bytes"]),
                fmt_bytes(st["memory_plan"]["arena_bytes"]),
                st["source"]["sha256"][:16],
            )
    console.print(g)


def print_profile(result, top: int) -> None:
    head = (
        f"{result.model}: {result.mean_ms:.3f} ms mean (p50 {result.p50_ms:.3f}, p90 {result.p90_ms:.3f}) over "
        f"{result.runs} runs, {result.throughput_per_s:.1f}/s, peak RSS {result.peak_rss_mb:.0f} MB"
    )
    if result.target:
        head += f"; estimated on {result.target}: {result.estimated_ms:.3f} ms"
    console.print(head)
    key = (lambda o: o.measured_us or 0) if any(o.measured_us for o in result.ops) else (lambda o: o.estimated_us or 0)
    t = Table(title=f"Slowest {top} ops")
    for c in ("op", "name", "measured µs", f"estimate µs ({result.target or '-'})", "bound", "MACC"):
        t.add_column(c, justify="left" if c in ("op", "name", "bound") else "right")
    for o in sorted(result.ops, key=key, reverse=True)[:top]:
        t.add_row(
            o.op,
            o.name[:40],
            _fmt(o.measured_us and round(o.measured_us, 1)),
            _fmt(o.estimated_us and round(o.estimated_us, 2)),
            o.bound,
            fmt_count(o.macc),
        )
    console.print(t)
