"""The CLI side of compile / validate --on / profile --on: one clear message and exit 1 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emberflow.toolchain.fmt import fmt_bytes, fmt_count


def _fail(message: str) -> int:
    typer.echo(f"error: {message}", err=True)
    return 1


def _errors() -> tuple[type[BaseException], ...]:
    from emberflow.targets import TargetError
    from emberflow.toolchain.graph import ModelError
    from emberflow.toolchain.inputs import InputsError
    from emberflow.toolchain.mcu.artifact import BuildError
    from emberflow.toolchain.mcu.lower import CompileError
    from emberflow.toolchain.mcu.protocol import ProtocolError

    return (
        ModelError,
        CompileError,
        BuildError,
        TargetError,
        ProtocolError,
        InputsError,
    )


def compile_to(
    model: Path,
    target: str,
    output: Path,
    name: str | None,
    kernels: str,
    shared_arena: bool,
    as_json: bool,
) -> int:
    from emberflow.toolchain.mcu.compile import compile_model

    try:
        art = compile_model(model, target, output, name=name, kernels=kernels, shared_arena=shared_arena)
    except _errors() as exc:
        return _fail(str(exc))
    m = art.manifest
    if as_json:
        typer.echo(json.dumps({"output": str(art.dir), **m}, indent=2))
        return 0
    typer.echo(f"wrote {art.dir}: {m['name']}.c/.h, {m['name']}_data.c, ef_runtime/, {m['name']}.mk/.cmake/_memory.ld")
    typer.echo(
        f"  {len(m['layers'])} layers, {fmt_count(m['macc'])} MACC, arena {fmt_bytes(m['arena_bytes'])} "
        f"(planner lower bound {fmt_bytes(m['arena_lower_bound'])}), state {fmt_bytes(m['state_bytes'])}, "
        f"weights {fmt_bytes(m['weights_bytes'])}"
    )
    b = m.get("build")
    if b:
        typer.echo(
            f"  {m['target']} ({b['core']}): model flash {fmt_bytes(b['model_flash'])} = weights+params "
            f"{fmt_bytes(b['weights'])} + model code {fmt_bytes(b['model_code'])} + runtime/kernels "
            f"{fmt_bytes(b['runtime_and_kernels'])}; kernel stack {b['kernel_stack']} B"
        )
    else:
        typer.echo("  (no arm-none-eabi-gcc: flash is not measured; `make mcu-tools` installs the toolchain)")
    return 0


def validate_on(
    reference: Path,
    compiled: Path,
    inputs: str,
    on: str,
    per_layer: bool,
    as_json: bool,
) -> int:
    from emberflow.toolchain.mcu.artifact import Artifact
    from emberflow.toolchain.mcu.check_exact import (
        npz_inputs,
        random_inputs,
        validate_compiled,
    )

    try:
        art = Artifact.open(compiled)
        if inputs.startswith("random"):
            samples = random_inputs(art, int(inputs.split(":", 1)[1]) if ":" in inputs else 8)
        else:
            samples = npz_inputs(art, inputs)
        result = validate_compiled(reference, compiled, samples, on=on, per_layer=True)
    except _errors() as exc:
        return _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        from types import SimpleNamespace

        from emberflow.toolchain.tables import print_validation

        # the same metrics table as host validation; the per-layer part is the bit-exact count below
        print_validation(
            SimpleNamespace(
                candidate=f"{compiled} on {on}",
                reference=str(reference),
                samples=result.samples,
                outputs=result.outputs,
                layers=[],
                first_divergence=None,
            )
        )
        shown = result.layers if per_layer else [x for x in result.layers if x.differing]
        for x in shown:
            typer.echo(f"  layer {x.layer:3d} {x.op:<18} {x.tensor[:40]:<40} {x.differing}/{x.elements} differ")
        total = sum(x.elements for x in result.layers)
        verdict = "bit-exact" if result.bit_exact else "NOT bit-exact"
        typer.echo(
            f"{verdict} with tflite-micro on {on}: {result.samples} inputs, {len(result.layers)} layer outputs, "
            f"{total - sum(x.differing for x in result.layers)}/{total} elements equal"
        )
    return 0 if result.bit_exact else 1


def profile_on(compiled: Path, on: str, kernels: str | None, as_json: bool) -> int:
    from emberflow.toolchain.mcu.perf import profile_compiled

    try:
        prof = profile_compiled(compiled, on, kernels)
    except _errors() as exc:
        return _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(prof.to_dict(), indent=2))
        return 0
    typer.echo(
        f"{prof.model} on {prof.on}, {prof.kernels} kernels: {fmt_count(prof.instructions)} emulated instructions "
        f"per inference ({prof.instructions / max(prof.macc, 1):.2f} per MACC)"
    )
    for layer in prof.layers:
        typer.echo(
            f"  {layer.index:3d} {layer.op:<18} {layer.node:<24} {fmt_count(layer.macc):>8} MACC "
            f"{fmt_count(layer.instructions):>8} instr"
        )
    s = prof.sizes
    typer.echo(
        f"flash: weights+params {fmt_bytes(s['weights'])}, model code {fmt_bytes(s['model_code'])}, runtime+kernels "
        f"{fmt_bytes(s['runtime_and_kernels'])} (model total {fmt_bytes(s['model_flash'])}), app "
        f"{fmt_bytes(s['app_code'])}"
    )
    typer.echo(
        f"RAM: arena {fmt_bytes(s['arena'])}, state {fmt_bytes(s['state'])}, data+bss {fmt_bytes(s['data_bss'])}, "
        f"stack used {prof.stack_used} B (kernel frame max {s['kernel_stack']} B in {s['kernel_stack_function']})"
    )
    typer.echo("(" + prof.notes[0] + ")")
    return 0
