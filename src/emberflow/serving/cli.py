"""CLI commands of the serving layer (create, serve, run-local). Import-light by contract."""

import typer


def register(app: typer.Typer) -> None:
    """Add the serving commands to the top-level `emberflow` app."""
