"""Rich tables for the toolchain commands (humans); `--json` output bypasses this module."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from emberflow.toolchain.fmt import fmt_bytes, fmt_count

console = Console()


def print_analysis(summary: dict, rows: list[dict], plan: dict, *, layers: bool = True, plan_rows: int = 40) -> None:
    if layers:
        t = Table(title=f"Layers of {summary['model']}", show_lines=False)
        for col, just in (("#", "right"), ("name", "left"), ("op", "left"), ("output", "left"), ("params", "right"),
                          ("MACC", "right"), ("weights", "right"), ("activations", "right")):
            t.add_column(col, justify=just)
        for r in rows:
            t.add_row(str(r["index"]), r["name"][:40], r["op"], r["output_shape"], fmt_count(r["params"]),
                      fmt_count(r["macc"]), fmt_bytes(r["weight_bytes"]), fmt_bytes(r["activation_bytes"]))
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


def print_check(result) -> None:
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
        t.add_row(tg.name, tg.kind, tg.cpu, f"{w.name} {fmt_bytes(w.bytes)}" if w else "-",
                  f"{a.name} {fmt_bytes(a.bytes)}" if a else "-", ",".join(tg.dtypes), tg.path)
    console.print(t)
