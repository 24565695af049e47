"""Self-contained HTML reports (inline SVG bar charts, no JavaScript, no network)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from emberflow.toolchain.fmt import fmt_bytes, fmt_count

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}td:first-child,th:first-child{text-align:left}
.bad{color:#b00}.ok{color:#070}svg text{font-size:11px}"""


def bar_chart(title: str, items: list[tuple[str, float]], fmt=str, width: int = 900) -> str:
    """Horizontal bars, one per item, biggest first (at most 40)."""
    items = sorted(items, key=lambda kv: -kv[1])[:40]
    peak = max((v for _, v in items), default=0) or 1
    row, label_w = 16, 260
    parts = [f'<h3>{html.escape(title)}</h3><svg width="{width}" height="{row * len(items) + 4}">']
    for i, (label, value) in enumerate(items):
        w = (width - label_w - 90) * value / peak
        y = i * row
        parts.append(
            f'<text x="0" y="{y + 12}">{html.escape(label[:42])}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row - 4}" fill="#4a7ebb"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 12}">{html.escape(fmt(value))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def page(title: str, body: str, data: dict) -> str:
    blob = html.escape(json.dumps(data, default=str))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}<details><summary>raw JSON</summary><pre>{blob}</pre>"
        "</details></body></html>"
    )


def write_analyze_report(path: Path, result: dict) -> None:
    s, plan, layers = result["summary"], result["memory_plan"], result["layers"]
    body = table(
        [
            {"metric": k, "value": v}
            for k, v in (
                ("params", fmt_count(s["params"])),
                ("MACC", fmt_count(s["macc"])),
                ("weights", fmt_bytes(s["weight_bytes"])),
                ("arena", fmt_bytes(plan["arena_bytes"])),
                ("lower bound", fmt_bytes(plan["lower_bound_bytes"])),
                ("planner", plan["strategy"]),
            )
        ],
        ["metric", "value"],
    )
    body += bar_chart("MACC per layer", [(f"{r['op']} {r['name']}", r["macc"]) for r in layers], fmt_count)
    body += bar_chart(
        "Weight bytes per layer", [(f"{r['op']} {r['name']}", r["weight_bytes"]) for r in layers], fmt_bytes
    )
    body += "<h3>Memory plan</h3>" + table(plan["table"], ["tensor", "offset", "begin", "end", "size"])
    Path(path).write_text(page(f"analyze: {s['model']}", body, result))


def write_check_report(path: Path, result) -> None:
    d = result.to_dict()
    verdict = f"<p class='{'ok' if result.fits else 'bad'}'>{html.escape(result.summary())}</p>"
    rows = [{"kind": v["kind"], "problem": v["message"], "what to do": v["hint"]} for v in d["violations"]]
    exact = d["sizes"] == "build"
    if d["sizes_how"]:
        verdict += f"<p>sizes: {html.escape(d['sizes_how'])}</p>"
    body = verdict + table(rows, ["kind", "problem", "what to do"])
    body += bar_chart(
        "Use of the target's memory (%)",
        [
            (
                "flash (the compiled model)" if exact else "flash (weights, estimate)",
                100 * d["weights_bytes"] / max(d["weights_capacity"], 1),
            ),
            (
                "RAM (the compiled model)" if exact else "RAM (activation arena, estimate)",
                100 * d["arena_bytes"] / max(d["ram_capacity"], 1),
            ),
        ],
        lambda v: f"{v:.0f}%",
    )
    Path(path).write_text(page(f"check on {d['target']}", body, d))


def write_validate_report(path: Path, result: dict) -> None:
    cols = ["name", "acc", "rmse", "mae", "l2r", "mean", "std", "nse", "cos", "max_abs"]
    body = table(result["outputs"], cols)
    if result["layers"]:
        body += bar_chart(
            "Per-layer cosine distance (1 - cos)",
            [(r["tensor"], 1 - r["cos"]) for r in result["layers"]],
            lambda v: f"{v:.2e}",
        )
        body += table(result["layers"], ["tensor", "compared_with", "cos", "max_abs", "ok"])
    Path(path).write_text(page(f"validate: {result['candidate']} vs {result['reference']}", body, result))


def write_profile_report(path: Path, result: dict) -> None:
    ops = result["ops"]
    body = (
        f"<p>mean {result['mean_ms']:.3f} ms, {result['throughput_per_s']:.1f}/s, "
        f"peak RSS {result['peak_rss_mb']:.0f} MB</p>"
    )
    body += bar_chart(
        "Measured µs per op (host)",
        [(f"{o['op']} {o['name']}", o["measured_us"]) for o in ops if o["measured_us"]],
        lambda v: f"{v:.1f} µs",
    )
    if result["target"]:
        body += bar_chart(
            f"Estimated µs per op ({result['target']})",
            [(f"{o['op']} {o['name']}", o["estimated_us"]) for o in ops if o["estimated_us"]],
            lambda v: f"{v:.1f} µs",
        )
    Path(path).write_text(page(f"profile: {result['model']}", body, result))
