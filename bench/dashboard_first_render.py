"""First render of the dashboard in Debian's Chromium: navigation to DOMContentLoaded, to the load
event, and to the first live data on screen: when the units table's first row from the event
stream was painted (Element Timing), and when a poll at animation frames noticed it; the page's
own marks; and the page weight (every response of the first load).

    python bench/dashboard_first_render.py [--runs 7] [--json]

Each run opens a new browser context (empty cache), so every file is fetched again. The daemon
preloads the LLM unit, as `make run` does, so the units table has a row to show.
"""

from __future__ import annotations

import argparse
import json
import statistics

from harness import Daemon, finish_machine, machine, print_table

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "bench-token"
# The units table has its first row from the live stream (polled at animation frames: late by
# however long the page's main thread is busy when the row arrives).
FIRST_DATA = "() => document.querySelector('#units tr[data-kind]') && performance.now()"
# When that row was painted: the Element Timing API (the row's first cell has
# elementtiming="units-row"), the browser's own render time, not when a poll noticed it.
ROW_PAINT = (
    "window.__paints = []; new PerformanceObserver(l => l.getEntries().forEach(e => "
    "window.__paints.push([e.identifier, e.renderTime || e.loadTime]))).observe({type: 'element', buffered: true});"
)
PAINTED = "() => (window.__paints.find(p => p[0] === 'units-row') || [])[1]"


def one_run(browser, url: str) -> dict[str, float]:
    context = browser.new_context()
    context.add_init_script(
        f"if (window === window.top) {{ localStorage.setItem('emberflow-token', {TOKEN!r}); {ROW_PAINT} }}"
    )
    page = context.new_page()
    sizes: list[int] = []
    page.on("response", lambda r: sizes.append(len(r.body())) if "/dashboard/api/" not in r.url else None)
    page.goto(url, wait_until="load")
    first_data = page.wait_for_function(FIRST_DATA, polling="raf", timeout=60_000).json_value()
    painted = page.wait_for_function(PAINTED, polling=50, timeout=60_000).json_value()
    timing = page.evaluate(
        "(() => { const n = performance.getEntriesByType('navigation')[0];"
        " const mark = m => (performance.getEntriesByName(m)[0] || {startTime: -1}).startTime;"
        " return [n.domContentLoadedEventEnd, n.loadEventEnd,"
        " mark('emberflow:boot'), mark('emberflow:stream'), mark('emberflow:hello')]; })()"
    )
    context.close()
    marks = dict(zip(("boot_ms", "stream_ms", "hello_ms"), timing[2:]))
    return {
        "dom_ms": timing[0],
        "load_ms": timing[1],
        "first_data_ms": painted,
        "first_seen_ms": first_data,
        "bytes": sum(sizes),
        **marks,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    info = machine()
    with Daemon({"http_port": 0, "token": TOKEN, "preload": ["llm"]}) as d, sync_playwright() as p:
        url = f"http://127.0.0.1:{d.server.http_port}/"
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        one_run(browser, url)  # warm-up: the daemon's first answers, Chromium's own start
        runs = [one_run(browser, url) for _ in range(args.runs)]
        browser.close()
    keys = ("dom_ms", "load_ms", "boot_ms", "stream_ms", "hello_ms", "first_data_ms", "first_seen_ms")
    result = {key: statistics.median(r[key] for r in runs) for key in keys}
    result["max_first_data_ms"] = max(r["first_data_ms"] for r in runs)
    result["page_bytes"] = runs[-1]["bytes"]
    result["runs"] = args.runs
    if args.json:
        print(json.dumps({**result, "machine": info}))
        return
    print_table(
        ["measure", "median", "max"],
        [
            ["DOMContentLoaded (ms)", f"{result['dom_ms']:.0f}", f"{max(r['dom_ms'] for r in runs):.0f}"],
            ["load event (ms)", f"{result['load_ms']:.0f}", f"{max(r['load_ms'] for r in runs):.0f}"],
            [
                "first live data painted (ms, Element Timing)",
                f"{result['first_data_ms']:.0f}",
                f"{result['max_first_data_ms']:.0f}",
            ],
            [
                "  the same row noticed by polling at animation frames (ms)",
                f"{result['first_seen_ms']:.0f}",
                f"{max(r['first_seen_ms'] for r in runs):.0f}",
            ],
            [
                "  page marks: boot / stream open / hello (ms)",
                f"{result['boot_ms']:.0f} / {result['stream_ms']:.0f} / {result['hello_ms']:.0f}",
                "",
            ],
            ["page weight (bytes)", str(result["page_bytes"]), ""],
        ],
    )
    print(finish_machine(info))


if __name__ == "__main__":
    main()
