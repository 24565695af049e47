"""CLI commands of flows and demos. Import-light by contract."""

import typer


def register(app: typer.Typer) -> None:
    """Add the flow/demo commands to the top-level `emberflow` app."""
