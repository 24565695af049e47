"""Cross builds for Cortex-M4/M7/M33 and emulated runs under QEMU (SystemPerformance and Validation)."""

from __future__ import annotations

import shutil

import pytest
from mcu_models import (
    float_io_edge_inputs,
    float_io_model,
    mlperf_model,
    residual_cnn,
    wake_word,
)
from typer.testing import CliRunner

from emberflow.cli import app
from emberflow.toolchain.mcu.board import BOARDS
from emberflow.toolchain.mcu.check_exact import random_inputs, validate_compiled
from emberflow.toolchain.mcu.compile import compile_model
from emberflow.toolchain.mcu.cross import build_app, have_cross_toolchain
from emberflow.toolchain.mcu.lower import CompileError
from emberflow.toolchain.mcu.perf import profile_compiled

pytestmark = pytest.mark.skipif(
    not have_cross_toolchain() or shutil.which("qemu-system-arm") is None,
    reason="needs gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm (make mcu-tools)",
)


@pytest.fixture(scope="module")
def nabu(tmp_path_factory):
    return compile_model(wake_word("okay_nabu"), "stm32f412", tmp_path_factory.mktemp("mcu") / "nabu")


@pytest.fixture(scope="module")
def digits_mcu(tmp_path_factory, digits_int8):
    return compile_model(digits_int8, "stm32h747", tmp_path_factory.mktemp("mcu") / "digits")


def test_compile_records_exact_sizes_from_the_cross_build(nabu):
    b = nabu.manifest["build"]
    assert b["weights"] >= nabu.manifest["weights_bytes"] > 0  # arrays plus the layer parameter structs
    assert 0 < b["runtime_and_kernels"] <= 12 * 1024
    assert 0 < b["kernel_stack"] <= 512
    assert b["arena"] == nabu.manifest["arena_bytes"] and b["state"] >= nabu.manifest["state_bytes"]
    # parameters are const: the model's objects put nothing in .data/.bss
    assert b["model_flash"] == b["weights"] + b["model_code"] + b["runtime_and_kernels"]


@pytest.mark.parametrize("on", ["qemu-m4", "qemu-m7", "qemu-m33"])
def test_validation_app_is_bit_exact_under_qemu(digits_mcu, digits_int8, on):
    r = validate_compiled(digits_int8, digits_mcu.dir, random_inputs(digits_mcu, 3), on=on)
    assert r.bit_exact and r.layers and r.differing_outputs == 0
    assert len(r.ticks) == 3 and all(t > 0 for t in r.ticks)


def test_streaming_model_keeps_state_on_the_device(nabu):
    r = validate_compiled(wake_word("okay_nabu"), nabu.dir, random_inputs(nabu, 6), on="qemu-m4")
    assert r.bit_exact and sum(x.elements for x in r.layers) > 0


def test_system_performance_counts_instructions_per_layer(digits_mcu):
    p = profile_compiled(digits_mcu.dir, "qemu-m4")
    assert p.instructions > 0 and all(layer.instructions > 0 for layer in p.layers)
    # the split (taken with the observer) covers the total (taken without it)
    assert sum(layer.instructions for layer in p.layers) >= p.instructions
    assert 0 < p.stack_used < p.sizes["stack_reserved"]
    again = profile_compiled(digits_mcu.dir, "qemu-m4")
    assert again.instructions == p.instructions  # -icount: deterministic


def test_dsp_kernels_run_fewer_instructions_than_portable(digits_mcu):
    dsp = profile_compiled(digits_mcu.dir, "qemu-m4", "dsp").instructions
    portable = profile_compiled(digits_mcu.dir, "qemu-m4", "portable").instructions
    assert dsp < portable


def test_a_model_over_flash_is_a_link_error_naming_the_region(tmp_path, monkeypatch):
    from emberflow.targets import BUILTIN_DIR

    model = residual_cnn(tmp_path / "r.tflite")
    from emberflow.toolchain.mcu import compile as compile_mod

    target = tmp_path / "small.toml"
    target.write_text(
        (BUILTIN_DIR / "stm32f412.toml")
        .read_text()
        .replace('name = "stm32f412"', 'name = "small"')
        .replace("bytes = 1048576", "bytes = 36000")
    )
    # the weights fit, weights plus code do not: without the pre-link estimate the linker says so
    monkeypatch.setattr(compile_mod, "CODE_ALLOWANCE", 0)
    with pytest.raises(CompileError, match=r"region FLASH overflowed by \d+ bytes"):
        compile_model(model, str(target), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_two_models_in_one_firmware_share_kernels_and_an_arena(tmp_path, digits_int8):
    a = compile_model(digits_int8, "stm32h747", tmp_path / "a", shared_arena=True, measure=False)
    b = compile_model(
        residual_cnn(tmp_path / "r.tflite"), "stm32h747", tmp_path / "b", shared_arena=True, measure=False
    )
    board = BOARDS["qemu-m4"]
    from emberflow.toolchain.mcu.cross import board_memory

    build = build_app([a, b], board.core, board_memory(board, 1 << 20, 256 << 10), "perf", tmp_path / "fw")
    # one arena of the larger size, one copy of the kernels
    assert build.sizes.arena == max(a.manifest["arena_bytes"], b.manifest["arena_bytes"])
    from emberflow.toolchain.mcu.qemu import run_console

    out = run_console(board, build.elf).console
    assert "EFPERF begin a " in out and "EFPERF begin b " in out


def test_cli_validate_and_profile_on_qemu(digits_mcu, digits_int8):
    res = CliRunner().invoke(
        app, ["validate", str(digits_int8), str(digits_mcu.dir), "--on", "qemu-m4", "--inputs", "random:2"]
    )
    assert res.exit_code == 0, res.output
    assert "bit-exact with tflite-micro on qemu-m4" in res.output
    res = CliRunner().invoke(app, ["profile", str(digits_mcu.dir), "--on", "qemu-m33", "--json"])
    assert res.exit_code == 0 and '"instructions"' in res.output


def test_kws_meets_the_instruction_target_on_m4(tmp_path):
    """Published TFLM on the same setup (shared/models/mlperf-tiny/README.md): 43.0M reference, 7.70M CMSIS-NN."""
    art = compile_model(mlperf_model("kws_ref_model.tflite"), "stm32h747", tmp_path / "kws")
    p = profile_compiled(art.dir, "qemu-m4")
    assert p.instructions * 2.5 <= 43.0e6 and p.instructions <= 1.3 * 7.70e6


@pytest.mark.parametrize("on", ["qemu-m4", "qemu-m33"])
def test_float_input_and_output_are_bit_exact_on_the_fpu(tmp_path, on):
    """QUANTIZE/DEQUANTIZE in single precision on the Cortex-M FPU, against tflite-micro on the host."""
    model = float_io_model(tmp_path / "float_io.tflite")
    art = compile_model(model, "stm32h747", tmp_path / "fio", measure=False)
    r = validate_compiled(model, art.dir, random_inputs(art, 2) + float_io_edge_inputs(), on=on)
    assert r.bit_exact and [x.op for x in r.layers] == ["QUANTIZE", "FULLY_CONNECTED", "DEQUANTIZE"]
