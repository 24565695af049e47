"""`emberflow chat`: an interactive terminal client over the StackFlow TCP protocol."""

from __future__ import annotations

import time

from emberflow.client import Client, ServerError


def run_chat(host: str, port: int, *, model: str, prompt: str, max_tokens: int, context: bool) -> int:
    from rich.console import Console

    console = Console()
    try:
        client = Client(host, port)
    except OSError as e:
        console.print(f"[red]cannot connect to {host}:{port}: {e}[/] — start the server with `emberflow up`")
        return 1
    with client:
        with console.status(f"loading {model} ..."):
            try:
                llm = client.setup(
                    "llm",
                    {
                        "model": model,
                        "response_format": "llm.utf-8.stream",
                        "input": "llm.utf-8.stream",
                        "enoutput": True,
                        "prompt": prompt,
                        "max_token_len": max_tokens,
                        "context": context,
                    },
                )
            except ServerError as e:
                console.print(f"[red]setup failed: {e}[/]")
                return 1
        console.print(
            f"[dim]{llm} ready. Empty line or Ctrl-D quits" + (", 'reset' clears context" if context else "") + ".[/]"
        )
        try:
            while True:
                try:
                    text = console.input("[bold green]you>[/] ").strip()
                except EOFError:
                    break
                if not text:
                    break
                console.print("[bold blue]llm>[/] ", end="")
                start, first, n = time.monotonic(), None, 0
                try:
                    for delta in client.stream(llm, text):
                        first = first or time.monotonic()
                        n += 1
                        console.print(delta, end="", markup=False, highlight=False)
                except ServerError as e:
                    console.print(f"\n[red]{e}[/]")
                    continue
                took = time.monotonic() - start
                ttft = (first - start) * 1000 if first else 0
                console.print(f"\n[dim]{n} chunks, first after {ttft:.0f} ms, {took:.2f} s total[/]")
        except KeyboardInterrupt:
            pass
        try:
            client.exit(llm)
        except (ServerError, OSError, ConnectionError):
            pass
    return 0
