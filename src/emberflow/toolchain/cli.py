"""CLI commands of the model toolchain. Must stay import-light: heavy imports go inside commands."""

import typer


def register(app: typer.Typer) -> None:
    """Add the toolchain commands to the top-level `emberflow` app."""
