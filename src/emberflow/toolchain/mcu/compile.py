"""`emberflow compile`: a quantized model -> a folder of C for a microcontroller.

The folder is written next to its destination and moved into place only when complete, so
a failure (float model, unsupported op, a model over the target's flash) leaves nothing
half-written, and an earlier compile at that path stays as it was.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from emberflow.targets import Target, load_target
from emberflow.toolchain.graph import ModelError
from emberflow.toolchain.mcu import emit
from emberflow.toolchain.mcu.artifact import (
    MANIFEST,
    RUNTIME_FILES,
    RUNTIME_SUBDIR,
    Artifact,
    LayerEntry,
    Manifest,
    TensorEntry,
    VariableEntry,
    package_runtime_dir,
)
from emberflow.toolchain.mcu.board import flash_region, ram_region
from emberflow.toolchain.mcu.lower import CompileError
from emberflow.toolchain.mcu.program import Program, build_program
from emberflow.toolchain.mcu.tflite_model import load_tflite

KERNELS = ("dsp", "portable")
# runtime, kernels and startup code: a safe upper bound for the pre-link fit check (measured ~6-9 KB)
CODE_ALLOWANCE = 16 * 1024


def c_name(text: str) -> str:
    name = re.sub(r"[^0-9a-zA-Z_]", "_", text).strip("_").lower() or "model"
    return f"m_{name}" if name[0].isdigit() else name


def _tflite_input(model: Path, work: Path) -> Path:
    if model.suffix.lower() == ".tflite":
        return model
    if model.suffix.lower() == ".onnx":
        from emberflow.toolchain.tflite_export import ExportError, export_tflite

        out = work / f"{model.stem}.tflite"
        try:
            export_tflite(model, out)
        except (ExportError, KeyError) as exc:
            raise CompileError(f"{model.name}: {exc}") from None
        return out
    raise ModelError(f"{model.name}: compile reads int8 .tflite or emberflow's int8 ONNX (from `emberflow quantize`)")


def _tensor_entry(program: Program, index: int) -> TensorEntry:
    t = program.sg.tensors[index]
    return TensorEntry(
        tensor=index,
        name=t.name,
        shape=list(t.shape),
        dtype=t.dtype,
        bytes=t.nbytes,
        scale=t.sc,
        zero_point=t.zp,
        offset=program.storage[index][1],
    )


def _input_entry(program: Program, index: int) -> TensorEntry:
    entry = _tensor_entry(program, index)
    for layer in program.layers:  # a float input: the range its QUANTIZE covers
        if layer.op.op_type == "QUANTIZE" and layer.reads == [index]:
            q = program.sg.tensors[layer.writes[0]]
            info = np.iinfo(np.dtype(q.dtype))
            entry["float_range"] = [
                (int(info.min) - q.zp) * q.sc,
                (int(info.max) - q.zp) * q.sc,
            ]
    return entry


def manifest(
    program: Program,
    model: Path,
    source: Path,
    target: Target,
    kernels: str,
    shared_arena: bool,
) -> Manifest:
    return Manifest(
        name=program.name,
        model=str(model),
        model_sha256=hashlib.sha256(model.read_bytes()).hexdigest(),
        compiled_from=str(source),
        target=target.name,
        target_path=target.path,
        kernels=kernels,
        shared_arena=shared_arena,
        tool=emit.tool_version(),
        macc=program.macc,
        arena_bytes=program.arena_bytes,
        arena_lower_bound=program.plan.lower_bound_bytes,
        state_bytes=program.state_bytes,
        weights_bytes=emit.weights_bytes(program),
        inputs=[_input_entry(program, i) for i in program.sg.inputs],
        outputs=[_tensor_entry(program, i) for i in program.sg.outputs],
        layers=[
            LayerEntry(
                index=pos,
                op=layer.op.op_type,
                node=layer.op.name,
                macc=layer.macc,
                scratch=layer.scratch,
                outputs=[_tensor_entry(program, i) for i in layer.writes],
            )
            for pos, layer in enumerate(program.layers)
        ],
        variables=[VariableEntry(name=v.name, offset=v.offset, bytes=v.nbytes) for v in program.variables],
    )


def _check_fit(program: Program, target: Target) -> None:
    flash, ram = flash_region(target), ram_region(target)
    need = emit.weights_bytes(program) + CODE_ALLOWANCE
    if need > flash.bytes:
        raise CompileError(
            f"{program.name} needs about {need} bytes of flash (weights {emit.weights_bytes(program)} "
            f"+ code), {need - flash.bytes} bytes more than {target.name}'s {flash.name} "
            f"({flash.bytes} bytes)"
        )
    if program.arena_bytes + program.state_bytes > ram.bytes:
        raise CompileError(
            f"{program.name} needs {program.arena_bytes + program.state_bytes} bytes of RAM for "
            f"activations and state, {program.arena_bytes + program.state_bytes - ram.bytes} bytes more "
            f"than {target.name}'s {ram.name} ({ram.bytes} bytes)"
        )


def _measure(stage: Path, info: Manifest, target: Target, fit: bool) -> None:
    from emberflow.toolchain.mcu.cross import DoesNotFit, have_cross_toolchain
    from emberflow.toolchain.mcu.perf import build_record

    info["build"] = None  # not measured: no cross toolchain here
    if have_cross_toolchain():
        try:
            info["build"] = build_record(Artifact(stage), roomy=not fit)
        except DoesNotFit as exc:
            raise CompileError(f"{info['name']} {exc} on {target.name}") from None
    (stage / MANIFEST).write_text(json.dumps(info, indent=2))


def compile_model(
    model: str | Path,
    target: str,
    output: str | Path,
    *,
    name: str | None = None,
    kernels: str = "dsp",
    shared_arena: bool = False,
    measure: bool = True,
    fit: bool = True,
) -> Artifact:
    """Compile `model` into the folder `output`. With `measure` and the Cortex-M toolchain installed,
    a cross build for the target's core records exact flash/RAM in the manifest (and a model over
    the target's memory fails here, as the link error it is). `fit=False` skips both fit checks
    (the build links into roomy regions), for `check` to report by how much a model is over."""
    model, output = Path(model), Path(output).resolve()
    if kernels not in KERNELS:
        raise CompileError(f"--kernels {kernels!r}: choose {' or '.join(KERNELS)}")
    tgt = load_target(target)
    if tgt.kind != "mcu":
        raise CompileError(
            f"target {tgt.name} is a {tgt.kind or 'non-MCU'} device; compile emits C for microcontrollers "
            "(e.g. --target stm32h747 or stm32f412)"
        )
    if not model.is_file():
        raise ModelError(f"model file not found: {model}")
    if output.exists() and not (output / MANIFEST).is_file() and any(output.iterdir()):
        raise CompileError(f"{output} exists and is not a compiled model folder; choose another -o")
    cname = c_name(name or output.name or model.stem)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{output.name}-", dir=output.parent) as tmp:
        work = Path(tmp)
        tflite = _tflite_input(model, work)
        program = build_program(load_tflite(tflite), cname)
        if fit:
            _check_fit(program, tgt)
        stage = work / "out"
        stage.mkdir()
        (stage / f"{cname}.h").write_text(emit.header(program))
        (stage / f"{cname}.c").write_text(emit.source(program, shared_arena))
        data_h, data_c = emit.data_files(program)
        (stage / f"{cname}_data.h").write_text(data_h)
        (stage / f"{cname}_data.c").write_text(data_c)
        (stage / RUNTIME_SUBDIR).mkdir()
        for f in RUNTIME_FILES:
            shutil.copy2(package_runtime_dir() / f, stage / RUNTIME_SUBDIR / f)
        if tflite != model:  # the lowered model: the reference for validate
            shutil.copy2(tflite, stage / f"{cname}.tflite")
        info = manifest(program, model, tflite, tgt, kernels, shared_arena)
        (stage / MANIFEST).write_text(json.dumps(info, indent=2))
        from emberflow.toolchain.mcu.buildfiles import write_build_files

        write_build_files(Artifact(stage), tgt)
        if measure:
            _measure(stage, info, tgt, fit)
        if output.exists():
            shutil.rmtree(output)
        stage.rename(output)
    return Artifact(output)
