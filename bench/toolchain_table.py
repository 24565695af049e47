"""Output of the toolchain benches: a markdown table, or JSON with `--json` (as `make bench --json` asks)."""

from __future__ import annotations

import json
import sys


def emit(columns: list[str], rows: list[list], summary: str = "", **extra) -> None:
    if "--json" in sys.argv[1:]:
        print(json.dumps({"rows": [dict(zip(columns, r)) for r in rows], "summary": summary, **extra}, indent=1))
        return
    for key, value in extra.items():
        print(f"{key}: {value}")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(str(v) for v in r) + " |")
    if summary:
        print(f"\n{summary}")
