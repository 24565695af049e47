"""CLI commands of the model toolchain. Must stay import-light: heavy imports go inside commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

SHAPE_HELP = "Fix a dynamic input shape, e.g. --shape x=1x3x48x320 (repeatable). Default: batch 1, other dynamic axes 32."
JSON_HELP = "Print machine-readable JSON instead of tables."
REPORT_HELP = "Also write an HTML report with charts to this file."


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _load_graph(model: Path, shape: list[str], inputs: Optional[str] = None):
    from emberflow.toolchain.graph import ModelError, load_graph, parse_shape_overrides

    try:
        feeds = None
        if inputs and inputs.endswith(".npz"):
            import numpy as np

            with np.load(inputs) as data:
                feeds = {k: data[k] for k in data.files}
        return load_graph(model, parse_shape_overrides(shape), feeds=feeds)
    except ModelError as exc:
        _fail(str(exc))


def _print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def register(app: typer.Typer) -> None:
    """Add the toolchain commands to the top-level `emberflow` app."""

    @app.command()
    def targets(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
        """List device profiles (shipped ones plus yours in $EMBERFLOW_TARGETS or ~/.config/emberflow/targets)."""
        from dataclasses import asdict

        from emberflow.targets import list_targets

        found = list_targets()
        if as_json:
            _print_json([asdict(t) for t in found])
        else:
            from emberflow.toolchain.tables import print_targets

            print_targets(found)

    @app.command()
    def analyze(
        model: Path = typer.Argument(..., help="Model file (.onnx or .tflite)."),
        shape: list[str] = typer.Option([], "--shape", help=SHAPE_HELP),
        inputs: Optional[str] = typer.Option(None, help="A .npz of real inputs, used when shapes must be measured."),
        strategy: str = typer.Option("best", help="Memory planner: size, breadth, order, or best (try all)."),
        inplace: bool = typer.Option(True, help="Let reshape-like ops share their input's buffer."),
        layers: bool = typer.Option(True, help="Print the per-layer table."),
        plan_rows: int = typer.Option(40, help="Rows of the memory-plan table to print (0: none)."),
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
        report: Optional[Path] = typer.Option(None, "--report", help=REPORT_HELP),
    ) -> None:
        """Per-layer ops, shapes, params, MACC, weight/activation bytes and the activation memory plan."""
        from emberflow.toolchain.analyze import layer_stats, rows_as_dicts, summarize
        from emberflow.toolchain.graph import device_dtypes
        from emberflow.toolchain.memplan import plan_memory

        graph = _load_graph(model, shape, inputs)
        rows = layer_stats(graph)
        summary = summarize(graph, rows)
        try:
            plan = plan_memory(graph, strategy, inplace=inplace, dtypes=device_dtypes(graph)).to_dict()
        except ValueError as exc:
            _fail(str(exc))
        result = {"summary": summary, "layers": rows_as_dicts(rows), "memory_plan": plan}
        if report:
            from emberflow.toolchain.report import write_analyze_report

            write_analyze_report(report, result)
        if as_json:
            _print_json(result)
        else:
            from emberflow.toolchain.tables import print_analysis

            print_analysis(summary, result["layers"], plan, layers=layers, plan_rows=plan_rows)

    @app.command()
    def check(
        model: Path = typer.Argument(..., help="Model file (.onnx or .tflite)."),
        target: str = typer.Option(..., "--target", "-t", help="Device profile name (see `emberflow targets`) or a .toml path."),
        shape: list[str] = typer.Option([], "--shape", help=SHAPE_HELP),
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
        report: Optional[Path] = typer.Option(None, "--report", help=REPORT_HELP),
    ) -> None:
        """Does the model fit the target? Lists every violation; exit code 1 if any."""
        from emberflow.targets import TargetError, load_target
        from emberflow.toolchain.check import check_model
        from emberflow.toolchain.graph import device_dtypes
        from emberflow.toolchain.memplan import plan_memory

        try:
            tgt = load_target(target)
        except TargetError as exc:
            _fail(str(exc))
        graph = _load_graph(model, shape)
        result = check_model(graph, plan_memory(graph, dtypes=device_dtypes(graph)), tgt)
        if report:
            from emberflow.toolchain.report import write_check_report

            write_check_report(report, result)
        if as_json:
            _print_json(result.to_dict())
        else:
            from emberflow.toolchain.tables import print_check

            print_check(result)
        raise typer.Exit(0 if result.fits else 1)
