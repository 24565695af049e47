"""CLI commands of the model toolchain. Must stay import-light: heavy imports go inside commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from emberflow.targets import Target
    from emberflow.toolchain.graph import Graph
    from emberflow.toolchain.mcu.footprint import Footprint

SHAPE_HELP = (
    "Fix a dynamic input shape, e.g. --shape x=1x3x48x320 (repeatable). Default: batch 1, other dynamic axes 32."
)
JSON_HELP = "Print machine-readable JSON instead of tables."
REPORT_HELP = "Also write an HTML report with charts to this file."
COMPILED_HELP = "A folder from `emberflow compile` of this model: flash/RAM from its cross build."
BUILD_HELP = (
    "MCU targets: compile the model into a temporary folder and cross-build it for exact flash/RAM "
    "(needs arm-none-eabi-gcc and a model `emberflow compile` takes); --no-build: the graph's estimate."
)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
ReportOpt = Annotated[Path | None, typer.Option("--report", help=REPORT_HELP)]
ShapeOpt = Annotated[list[str] | None, typer.Option("--shape", help=SHAPE_HELP)]
CompiledOpt = Annotated[Path | None, typer.Option("--compiled", help=COMPILED_HELP)]
BuildOpt = Annotated[bool, typer.Option("--build/--no-build", help=BUILD_HELP)]


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _load_graph(model: Path, shape: list[str] | None, inputs: str | None = None) -> Graph:
    """The model's graph; with `inputs`, the first sample drives shapes and the shape probe."""
    from emberflow.toolchain.graph import ModelError, load_graph, parse_shape_overrides

    try:
        shapes = parse_shape_overrides(shape)
        feeds = None
        if inputs:
            from emberflow.runtime import Engine, EngineError
            from emberflow.toolchain.inputs import (
                InputsError,
                concrete_specs,
                load_samples,
            )

            try:
                feeds = load_samples(inputs, concrete_specs(Engine(model).inputs, shapes), count=1)[0]
            except (EngineError, InputsError) as exc:
                _fail(str(exc))
        return load_graph(model, shapes, feeds=feeds)
    except ModelError as exc:
        _fail(str(exc))


def _print_json(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def _footprint(model: Path, target: Target, compiled: Path | None, build: bool) -> Footprint:
    """Flash/RAM from the compile step's cross build when there is one (see mcu/footprint.py)."""
    from emberflow.toolchain.mcu.artifact import BuildError
    from emberflow.toolchain.mcu.footprint import model_footprint

    try:
        return model_footprint(model, target, compiled=compiled, build=build)
    except BuildError as exc:
        _fail(str(exc))


def _target_for(target: str | None, compiled: Path | None) -> Target | None:
    """The profile named, else the one a compiled folder was built for, else None."""
    from emberflow.targets import TargetError, load_target
    from emberflow.toolchain.mcu.artifact import Artifact, BuildError

    try:
        if target is not None:
            return load_target(target)
        return Artifact.open(compiled).target() if compiled is not None else None
    except (TargetError, BuildError) as exc:
        _fail(str(exc))


def register(app: typer.Typer) -> None:
    """Add the toolchain commands to the top-level `emberflow` app."""

    @app.command()
    def targets(as_json: JsonOpt = False) -> None:
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
        model: Annotated[Path, typer.Argument(help="Model file (.onnx or .tflite).")],
        shape: ShapeOpt = None,
        inputs: Annotated[
            str | None,
            typer.Option(help="Real inputs (.npz or directory; first sample used) when static shapes are not enough."),
        ] = None,
        strategy: Annotated[
            str, typer.Option(help="Memory planner: size, breadth, order, or best (try all).")
        ] = "best",
        inplace: Annotated[bool, typer.Option(help="Let reshape-like ops share their input's buffer.")] = True,
        layers: Annotated[bool, typer.Option(help="Print the per-layer table.")] = True,
        plan_rows: Annotated[int, typer.Option(help="Rows of the memory-plan table to print (0: none).")] = 40,
        target: Annotated[
            str | None,
            typer.Option("--target", "-t", help="MCU profile: also the compiled model's exact flash/RAM on it."),
        ] = None,
        compiled: CompiledOpt = None,
        build: BuildOpt = True,
        as_json: JsonOpt = False,
        report: ReportOpt = None,
    ) -> None:
        """Per-layer ops, shapes, params, MACC, weight/activation bytes and the activation memory plan.

        Weights and arena are the graph's estimate of flash and RAM; with --target (an MCU) or
        --compiled, the exact flash/RAM by section from the compile step's cross build too."""
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
        tgt = _target_for(target, compiled)
        fp = _footprint(model, tgt, compiled, build) if tgt else None
        summary["sizes"] = fp.source if fp else "estimate"
        layer_rows = rows_as_dicts(rows)
        result: dict[str, object] = {"summary": summary, "layers": layer_rows, "memory_plan": plan}
        if fp and tgt:
            result["footprint"] = {"target": tgt.name, **fp.to_dict()}
        if report:
            from emberflow.toolchain.report import write_analyze_report

            write_analyze_report(report, result)
        if as_json:
            _print_json(result)
        else:
            from emberflow.toolchain.tables import print_analysis, print_footprint

            print_analysis(summary, layer_rows, plan, layers=layers, plan_rows=plan_rows)
            if fp and tgt:
                print_footprint(fp, tgt.name)

    @app.command()
    def check(
        model: Annotated[Path, typer.Argument(help="Model file (.onnx or .tflite).")],
        target: Annotated[
            str, typer.Option("--target", "-t", help="Device profile name (see `emberflow targets`) or a .toml path.")
        ],
        shape: ShapeOpt = None,
        compiled: CompiledOpt = None,
        build: BuildOpt = True,
        as_json: JsonOpt = False,
        report: ReportOpt = None,
    ) -> None:
        """Does the model fit the target? Lists every violation; exit code 1 if any.

        On an MCU, flash/RAM are exact when the compile step's cross build can say (--compiled DIR,
        or a compile into a temporary folder when arm-none-eabi-gcc is installed); else estimates.
        The output says which."""
        from emberflow.targets import TargetError, load_target
        from emberflow.toolchain.check import check_model
        from emberflow.toolchain.graph import device_dtypes
        from emberflow.toolchain.memplan import plan_memory

        try:
            tgt = load_target(target)
        except TargetError as exc:
            _fail(str(exc))
        graph = _load_graph(model, shape)
        fp = _footprint(model, tgt, compiled, build)
        result = check_model(graph, plan_memory(graph, dtypes=device_dtypes(graph)), tgt, fp)
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
        model: Annotated[Path, typer.Argument(help="fp32 ONNX model.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the int8 QDQ model.")],
        calib: Annotated[
            str, typer.Option(help="Calibration data: a directory of .npz/.npy, a .npz file, or random[:N].")
        ] = "random",
        method: Annotated[
            str, typer.Option(help="Calibration: minmax, entropy, percentile or distribution.")
        ] = "minmax",
        per_channel: Annotated[bool, typer.Option(help="Per-output-channel weight scales.")] = True,
        reduce_range: Annotated[
            bool,
            typer.Option(help="7-bit weights: avoids int8 overflow in onnxruntime's x86 kernels (not needed on MCUs)."),
        ] = False,
        symmetric_activations: Annotated[bool, typer.Option(help="Symmetric int8 activations (zero point 0).")] = False,
        shape: Annotated[
            list[str] | None, typer.Option("--shape", help=SHAPE_HELP + " Used for random calibration data.")
        ] = None,
        exclude: Annotated[
            list[str] | None, typer.Option("--exclude", help="Node name to keep in float (repeatable).")
        ] = None,
        op_types: Annotated[
            str | None,
            typer.Option(help="Only quantize these op types, e.g. Conv,MatMul (default: every op onnxruntime can)."),
        ] = None,
        as_json: JsonOpt = False,
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
                    model,
                    output,
                    samples,
                    method=method,
                    per_channel=per_channel,
                    reduce_range=reduce_range,
                    symmetric_activations=symmetric_activations,
                    exclude_nodes=exclude or [],
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
        reference: Annotated[
            Path, typer.Argument(help="Reference model (e.g. the fp32 ONNX, or the .tflite you compiled).")
        ],
        candidate: Annotated[
            Path, typer.Argument(help="Model to check (int8 ONNX, .tflite, .ember, or a compiled folder).")
        ],
        inputs: Annotated[
            str, typer.Option(help="Inputs: random[:N], a .npz file or a directory of .npz/.npy.")
        ] = "random",
        shape: ShapeOpt = None,
        per_layer: Annotated[
            bool, typer.Option("--per-layer", help="Compare every intermediate tensor (ONNX pairs).")
        ] = False,
        tolerance: Annotated[float, typer.Option(help="Per-layer: cosine below this counts as diverged.")] = 0.99,
        on: Annotated[
            str | None,
            typer.Option(
                "--on", help="Compiled folder: run it on host, qemu-m4, qemu-m7, qemu-m33 or serial:URL (default host)."
            ),
        ] = None,
        as_json: JsonOpt = False,
        report: ReportOpt = None,
    ) -> None:
        """Compare a candidate to a reference: acc, rmse, mae, l2r, mean/std, nse, cos, max error, LSB histogram.

        With a folder from `emberflow compile`, the compiled C runs (here, under QEMU or on a board)
        against TFLite-Micro, every layer; exit 0 only when it is bit-exact."""
        if (candidate / "manifest.json").is_file() or on is not None:
            from emberflow.toolchain.mcu.commands import validate_on

            raise typer.Exit(validate_on(reference, candidate, inputs, on or "host", per_layer, as_json))
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
        models: Annotated[list[str], typer.Argument(help="Models as PATH or NAME=PATH; a repeated NAME adds a stage.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Bundle to write (.ember).")],
        target: Annotated[
            str | None,
            typer.Option("--target", "-t", help="Record the device profile and store a fit check per stage."),
        ] = None,
        norm: Annotated[
            list[str] | None, typer.Option("--norm", help="Input normalisation INPUT=MEAN,../STD,.. (repeatable).")
        ] = None,
        shape: Annotated[
            list[str] | None, typer.Option("--shape", help=SHAPE_HELP + " Used for the memory plan.")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Pack one or more graphs (multi-net, multi-stage) into one self-describing .ember bundle."""
        from emberflow.targets import TargetError
        from emberflow.toolchain.graph import ModelError, parse_shape_overrides
        from emberflow.toolchain.pack import PackError, pack_models

        try:
            result = pack_models(models, output, target=target, norms=norm or [], shapes=parse_shape_overrides(shape))
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
        bundle: Annotated[Path, typer.Argument(help="An .ember bundle.")],
        as_json: JsonOpt = False,
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
        model: Annotated[
            Path, typer.Argument(help="Model file (.onnx or .tflite), or a folder from `emberflow compile`.")
        ],
        on: Annotated[
            str | None,
            typer.Option(
                "--on", help="Compiled folder: run the SystemPerformance app on qemu-m4, qemu-m7 or qemu-m33."
            ),
        ] = None,
        kernels: Annotated[
            str | None, typer.Option(help="Compiled folder: dsp or portable (default: as compiled).")
        ] = None,
        target: Annotated[
            str | None, typer.Option("--target", "-t", help="Also estimate per-op time on this device.")
        ] = None,
        runs: Annotated[int, typer.Option(help="Timed runs after 2 warm-up runs.")] = 20,
        inputs: Annotated[
            str, typer.Option(help="Input: random, or a .npz / directory (the first sample is used).")
        ] = "random",
        shape: ShapeOpt = None,
        top: Annotated[int, typer.Option(help="Rows of the per-op table (slowest first).")] = 15,
        optimized: Annotated[
            bool, typer.Option(help="Time the fully fused graph (op names then differ from the file).")
        ] = False,
        trace: Annotated[Path | None, typer.Option(help="Write a Chrome trace (chrome://tracing, Perfetto).")] = None,
        speedscope_file: Annotated[
            Path | None, typer.Option("--speedscope", help="Write a speedscope profile.")
        ] = None,
        as_json: JsonOpt = False,
        report: ReportOpt = None,
    ) -> None:
        """Measured per-op latency here (onnxruntime profiler), throughput, peak RSS, and a target estimate.

        With a compiled folder and --on qemu-*: per-layer emulated instructions and flash/RAM by section."""
        if (model / "manifest.json").is_file() or on is not None:
            from emberflow.toolchain.mcu.commands import profile_on

            raise typer.Exit(profile_on(model, on or "qemu-m4", kernels, as_json))
        from emberflow.runtime import Engine, EngineError
        from emberflow.targets import TargetError, load_target
        from emberflow.toolchain.graph import (
            ModelError,
            load_graph,
            parse_shape_overrides,
        )
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
        shape: list[str] = typer.Option(
            [], "--shape", help="Fix an input size the model leaves open, e.g. --shape input=1x256x256x3 (repeatable)."
        ),
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    ) -> None:
        """Import a TF.js graph model into ONNX (no TensorFlow needed); fp16/quantized weights are dequantized."""
        from emberflow.toolchain.fmt import fmt_bytes
        from emberflow.toolchain.graph import ModelError, parse_shape_overrides
        from emberflow.toolchain.tfjs import convert_tfjs
        from emberflow.toolchain.tfjs_model import TfjsError

        try:
            report = convert_tfjs(model, output, shapes=parse_shape_overrides(shape))
        except (TfjsError, ModelError) as exc:
            _fail(str(exc))
        if as_json:
            _print_json(report.to_dict())
            return
        ops = ", ".join(f"{op} {n}" for op, n in sorted(report.onnx_ops.items(), key=lambda kv: -kv[1]))
        typer.echo(
            f"wrote {output}: {fmt_bytes(report.bytes)}; inputs {', '.join(report.inputs)}; "
            f"outputs {', '.join(report.outputs)}"
        )
        typer.echo(f"  {sum(report.ops.values())} TF nodes ({report.folded} computed while converting) -> ONNX: {ops}")
        typer.echo("  numeric check against TF.js itself: docs/toolchain.md (TF.js import)")

    @app.command("export-tflite")
    def export_tflite_cmd(
        model: Annotated[Path, typer.Argument(help="QDQ int8 ONNX (from `emberflow quantize`).")],
        output: Annotated[Path, typer.Option("--output", "-o", help="The .tflite to write.")],
    ) -> None:
        """Lower a QDQ int8 CNN to an int8 .tflite that TFLite-Micro runs (NHWC, int8 input and output)."""
        from emberflow.toolchain.fmt import fmt_bytes
        from emberflow.toolchain.tflite_export import ExportError, export_tflite

        try:
            size = export_tflite(model, output)
        except (ExportError, KeyError) as exc:
            _fail(str(exc))
        typer.echo(f"wrote {output}: {fmt_bytes(size)}; check it with `emberflow validate {model} {output}`")

    @app.command("compile")
    def compile_cmd(
        model: Annotated[
            Path, typer.Argument(help="int8 .tflite, or emberflow's int8 ONNX (from `emberflow quantize`).")
        ],
        target: Annotated[str, typer.Option("--target", "-t", help="MCU device profile, e.g. stm32h747 or stm32f412.")],
        output: Annotated[
            Path,
            typer.Option("--output", "-o", help="Folder to write (NAME.c/.h, NAME_data.c, runtime, build files)."),
        ],
        name: Annotated[
            str | None, typer.Option(help="C prefix of the API (ai_NAME_*); default: the folder name.")
        ] = None,
        kernels: Annotated[str, typer.Option(help="dsp (SMLAD when __ARM_FEATURE_DSP) or portable C.")] = "dsp",
        shared_arena: Annotated[
            bool,
            typer.Option(
                "--shared-arena", help="Share one arena with other models compiled so (never run at the same time)."
            ),
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Emit C for a microcontroller: const weights in flash, one planned arena, the ai_NAME_* API."""
        from emberflow.toolchain.mcu.commands import compile_to

        raise typer.Exit(compile_to(model, target, output, name, kernels, shared_arena, as_json))
