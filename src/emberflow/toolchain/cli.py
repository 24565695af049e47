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
    """The model's graph; with `inputs`, the first sample drives shapes and the shape probe."""
    from emberflow.toolchain.graph import ModelError, load_graph, parse_shape_overrides

    try:
        shapes = parse_shape_overrides(shape)
        feeds = None
        if inputs:
            from emberflow.runtime import Engine, EngineError
            from emberflow.toolchain.inputs import InputsError, concrete_specs, load_samples

            try:
                feeds = load_samples(inputs, concrete_specs(Engine(model).inputs, shapes), count=1)[0]
            except (EngineError, InputsError) as exc:
                _fail(str(exc))
        return load_graph(model, shapes, feeds=feeds)
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
        inputs: Optional[str] = typer.Option(
            None, help="Real inputs (.npz or directory; first sample used) when static shapes are not enough."
        ),
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

    @app.command()
    def quantize(
        model: Path = typer.Argument(..., help="fp32 ONNX model."),
        output: Path = typer.Option(..., "--output", "-o", help="Where to write the int8 QDQ model."),
        calib: str = typer.Option("random", help="Calibration data: a directory of .npz/.npy, a .npz file, or random[:N]."),
        method: str = typer.Option("minmax", help="Calibration: minmax, entropy, percentile or distribution."),
        per_channel: bool = typer.Option(True, help="Per-output-channel weight scales."),
        reduce_range: bool = typer.Option(
            False, help="7-bit weights: avoids int8 overflow in onnxruntime's x86 kernels (not needed on MCUs)."
        ),
        symmetric_activations: bool = typer.Option(False, help="Symmetric int8 activations (zero point 0)."),
        shape: list[str] = typer.Option([], "--shape", help=SHAPE_HELP + " Used for random calibration data."),
        exclude: list[str] = typer.Option([], "--exclude", help="Node name to keep in float (repeatable)."),
        op_types: Optional[str] = typer.Option(
            None, help="Only quantize these op types, e.g. Conv,MatMul (default: every op onnxruntime can)."
        ),
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    ) -> None:
        """Static int8 post-training quantization (QDQ, onnxruntime), with a size summary."""
        from rich.progress import Progress

        from emberflow.runtime import Engine, EngineError
        from emberflow.toolchain.graph import ModelError, parse_shape_overrides
        from emberflow.toolchain.inputs import InputsError, concrete_specs, load_samples
        from emberflow.toolchain.quantize import QuantizeError, quantize_model

        try:
            specs = concrete_specs(Engine(model).inputs, parse_shape_overrides(shape))
            samples = load_samples(calib, specs, count=32)
        except (EngineError, ModelError, InputsError) as exc:
            _fail(str(exc))
        with Progress(transient=True, disable=as_json) as progress:
            task = progress.add_task("calibrating", total=len(samples))
            try:
                summary = quantize_model(
                    model, output, samples, method=method, per_channel=per_channel, reduce_range=reduce_range,
                    symmetric_activations=symmetric_activations, exclude_nodes=exclude,
                    op_types=op_types.split(",") if op_types else None,
                    on_sample=lambda: progress.advance(task),
                )
            except QuantizeError as exc:
                _fail(str(exc))
        if as_json:
            _print_json(summary.to_dict())
        else:
            from emberflow.toolchain.tables import print_quantize

            print_quantize(summary)

    @app.command()
    def validate(
        reference: Path = typer.Argument(..., help="Reference model (e.g. the fp32 ONNX)."),
        candidate: Path = typer.Argument(..., help="Model to check (int8 ONNX, .tflite or .ember)."),
        inputs: str = typer.Option("random", help="Inputs: random[:N], a .npz file or a directory of .npz/.npy."),
        shape: list[str] = typer.Option([], "--shape", help=SHAPE_HELP),
        per_layer: bool = typer.Option(False, "--per-layer", help="Compare every intermediate tensor (ONNX pairs)."),
        tolerance: float = typer.Option(0.99, help="Per-layer: cosine below this counts as diverged."),
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
        report: Optional[Path] = typer.Option(None, "--report", help=REPORT_HELP),
    ) -> None:
        """Compare a candidate to a reference: acc, rmse, mae, l2r, mean/std, nse, cos, max error, LSB histogram."""
        from emberflow.runtime import Engine, EngineError
        from emberflow.toolchain.graph import ModelError, parse_shape_overrides
        from emberflow.toolchain.inputs import InputsError, concrete_specs, load_samples
        from emberflow.toolchain.validate import validate as run_validation

        try:
            specs = concrete_specs(Engine(reference).inputs, parse_shape_overrides(shape))
            samples = load_samples(inputs, specs, count=8)
            result = run_validation(reference, candidate, samples, per_layer_check=per_layer, tolerance=tolerance)
        except (EngineError, ModelError, InputsError, ValueError) as exc:
            _fail(str(exc))
        if report:
            from emberflow.toolchain.report import write_validate_report

            write_validate_report(report, result.to_dict())
        if as_json:
            _print_json(result.to_dict())
        else:
            from emberflow.toolchain.tables import print_validation

            print_validation(result)
        if result.first_divergence is not None:
            raise typer.Exit(1)

    @app.command()
    def pack(
        models: list[str] = typer.Argument(..., help="Models as PATH or NAME=PATH; a repeated NAME adds a stage."),
        output: Path = typer.Option(..., "--output", "-o", help="Bundle to write (.ember)."),
        target: Optional[str] = typer.Option(None, "--target", "-t", help="Record the device profile and store a fit check per stage."),
        norm: list[str] = typer.Option([], "--norm", help="Input normalisation INPUT=MEAN,../STD,.. (repeatable)."),
        shape: list[str] = typer.Option([], "--shape", help=SHAPE_HELP + " Used for the memory plan."),
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    ) -> None:
        """Pack one or more graphs (multi-net, multi-stage) into one self-describing .ember bundle."""
        from emberflow.targets import TargetError
        from emberflow.toolchain.graph import ModelError, parse_shape_overrides
        from emberflow.toolchain.pack import PackError, pack_models

        try:
            result = pack_models(models, output, target=target, norms=norm, shapes=parse_shape_overrides(shape))
        except (PackError, ModelError, TargetError) as exc:
            _fail(str(exc))
        if as_json:
            _print_json(result)
        else:
            from emberflow.toolchain.fmt import fmt_bytes

            graphs = ", ".join(f"{n} ({k} stage{'s' * (k > 1)})" for n, k in result["graphs"].items())
            typer.echo(f"wrote {result['output']}: {fmt_bytes(result['bytes'])}, graphs: {graphs}")
            if result["shared_weight_bytes"] > 0:
                typer.echo(f"  stages share their weights: {fmt_bytes(result['shared_weight_bytes'])} saved")
            for line in result["checks"]:
                typer.echo(f"  {line} (details: emberflow check)")

    @app.command()
    def inspect(
        bundle: Path = typer.Argument(..., help="An .ember bundle."),
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    ) -> None:
        """Show a bundle's header, sections (with CRC check), graphs, stages and provenance."""
        from emberflow.runtime.bundle import BundleError
        from emberflow.toolchain.pack import inspect_bundle

        try:
            info = inspect_bundle(bundle)
        except BundleError as exc:
            _fail(str(exc))
        if as_json:
            _print_json(info)
        else:
            from emberflow.toolchain.tables import print_bundle

            print_bundle(info)

    @app.command()
    def profile(
        model: Path = typer.Argument(..., help="Model file (.onnx or .tflite)."),
        target: Optional[str] = typer.Option(None, "--target", "-t", help="Also estimate per-op time on this device."),
        runs: int = typer.Option(20, help="Timed runs after 2 warm-up runs."),
        inputs: str = typer.Option("random", help="Input: random, or a .npz / directory (the first sample is used)."),
        shape: list[str] = typer.Option([], "--shape", help=SHAPE_HELP),
        top: int = typer.Option(15, help="Rows of the per-op table (slowest first)."),
        optimized: bool = typer.Option(False, help="Time the fully fused graph (op names then differ from the file)."),
        trace: Optional[Path] = typer.Option(None, help="Write a Chrome trace (chrome://tracing, Perfetto)."),
        speedscope_file: Optional[Path] = typer.Option(None, "--speedscope", help="Write a speedscope profile."),
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
        report: Optional[Path] = typer.Option(None, "--report", help=REPORT_HELP),
    ) -> None:
        """Measured per-op latency here (onnxruntime profiler), throughput, peak RSS, and a target estimate."""
        from emberflow.runtime import Engine, EngineError
        from emberflow.targets import TargetError, load_target
        from emberflow.toolchain.graph import ModelError, load_graph, parse_shape_overrides
        from emberflow.toolchain.inputs import InputsError, concrete_specs, load_samples
        from emberflow.toolchain.profile import chrome_trace, profile_model, speedscope

        try:
            tgt = load_target(target) if target else None
            shapes = parse_shape_overrides(shape)
            feeds = load_samples(inputs, concrete_specs(Engine(model).inputs, shapes), count=1)[0]
            graph = load_graph(model, {k: tuple(v.shape) for k, v in feeds.items()}, feeds=feeds)
            result = profile_model(model, graph, feeds, runs=runs, target=tgt, optimized=optimized)
        except (EngineError, ModelError, InputsError, TargetError, ValueError) as exc:
            _fail(str(exc))
        if trace:
            trace.write_text(json.dumps(chrome_trace(result)))
        if speedscope_file:
            speedscope_file.write_text(json.dumps(speedscope(result)))
        if report:
            from emberflow.toolchain.report import write_profile_report

            write_profile_report(report, result.to_dict())
        if as_json:
            _print_json(result.to_dict())
        else:
            from emberflow.toolchain.tables import print_profile

            print_profile(result, top)

    @app.command()
    def convert(
        model: Path = typer.Argument(..., help="A TF.js graph model: model.json with its .bin shards beside it."),
        output: Path = typer.Option(..., "--output", "-o", help="The .onnx to write."),
        shape: list[str] = typer.Option([], "--shape", help="Fix an input size the model leaves open, "
                                                            "e.g. --shape input=1x256x256x3 (repeatable)."),
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    ) -> None:
        """Import a TF.js graph model into ONNX (no TensorFlow needed); fp16/quantized weights are dequantized."""
        from emberflow.toolchain.fmt import fmt_bytes
        from emberflow.toolchain.graph import ModelError, parse_shape_overrides
        from emberflow.toolchain.tfjs_convert import convert_tfjs
        from emberflow.toolchain.tfjs_model import TfjsError

        try:
            report = convert_tfjs(model, output, shapes=parse_shape_overrides(shape))
        except (TfjsError, ModelError) as exc:
            _fail(str(exc))
        if as_json:
            _print_json(report.to_dict())
            return
        ops = ", ".join(f"{op} {n}" for op, n in sorted(report.onnx_ops.items(), key=lambda kv: -kv[1]))
        typer.echo(f"wrote {output}: {fmt_bytes(report.bytes)}; inputs {', '.join(report.inputs)}; "
                   f"outputs {', '.join(report.outputs)}")
        typer.echo(f"  {sum(report.ops.values())} TF nodes ({report.folded} computed while converting) -> ONNX: {ops}")
        typer.echo("  numeric check against TF.js itself: docs/toolchain.md (TF.js import)")

    @app.command("export-tflite")
    def export_tflite_cmd(
        model: Path = typer.Argument(..., help="QDQ int8 ONNX (from `emberflow quantize`)."),
        output: Path = typer.Option(..., "--output", "-o", help="The .tflite to write."),
    ) -> None:
        """Lower a QDQ int8 CNN to an int8 .tflite that TFLite-Micro runs (NHWC, int8 input and output)."""
        from emberflow.toolchain.fmt import fmt_bytes
        from emberflow.toolchain.tflite_export import ExportError, export_tflite

        try:
            size = export_tflite(model, output)
        except (ExportError, KeyError) as exc:
            _fail(str(exc))
        typer.echo(f"wrote {output}: {fmt_bytes(size)}; check it with `emberflow validate {model} {output}`")
