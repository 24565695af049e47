"""check and analyze take flash/RAM from the compile step's cross build when there is one,
and say so; without arm-none-eabi-gcc (PATH pointed away) they say the figures are estimates."""

from __future__ import annotations

import json

import pytest
from mcu_models import residual_cnn
from typer.testing import CliRunner

from emberflow.cli import app
from emberflow.targets import BUILTIN_DIR
from emberflow.toolchain.graph import load_graph
from emberflow.toolchain.mcu.compile import compile_model
from emberflow.toolchain.mcu.cross import have_cross_toolchain

needs_toolchain = pytest.mark.skipif(
    not have_cross_toolchain(), reason="needs gcc-arm-none-eabi and libnewlib-arm-none-eabi (make mcu-tools)"
)


def _json(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code in (0, 1), res.output
    return res.exit_code, json.loads(res.stdout)


@pytest.fixture
def no_toolchain(tmp_path, monkeypatch):
    """A PATH with no arm-none-eabi-gcc on it: the machine as a user without the toolchain has it."""
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert not have_cross_toolchain()


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    return residual_cnn(tmp_path_factory.mktemp("fp") / "resnet.tflite")


@needs_toolchain
def test_check_reports_the_compile_steps_exact_sizes(resnet, tmp_path):
    art = compile_model(resnet, "stm32h747", tmp_path / "resnet")  # named as check's own compile names it
    recorded = art.manifest["build"]
    assert recorded is not None

    code, temp = _json("check", resnet, "-t", "stm32h747", "--json")  # compiles into a temporary folder
    assert code == 0 and temp["sizes"] == "build" and "exact" in temp["sizes_how"]
    assert temp["build"] == recorded  # the same cross build `compile` did, section by section
    assert temp["weights_bytes"] == recorded["model_flash"] > recorded["weights"] > 0
    assert temp["arena_bytes"] == recorded["model_ram"] >= recorded["arena"] == art.manifest["arena_bytes"]
    assert temp["weights_region"] == "flash" and temp["ram_region"] == "axi_sram"

    code, given = _json("check", resnet, "-t", "stm32h747", "--compiled", art.dir, "--json")
    assert code == 0 and given["sizes"] == "build" and str(art.dir) in given["sizes_how"]
    assert given["build"] == recorded

    text = CliRunner().invoke(app, ["check", str(resnet), "-t", "stm32h747"]).stdout
    assert "exact, from the cross build" in text and "weights+params" in text and "kernel stack" in text


@needs_toolchain
def test_check_measures_a_model_over_flash_and_says_by_how_much(resnet, tmp_path):
    small = tmp_path / "small.toml"
    small.write_text(
        (BUILTIN_DIR / "stm32f412.toml")
        .read_text()
        .replace('name = "stm32f412"', 'name = "small"')
        .replace("bytes = 1048576", "bytes = 36000")
    )
    code, r = _json("check", resnet, "-t", small, "--json")
    assert code == 1 and r["sizes"] == "build"
    flash = next(v for v in r["violations"] if v["kind"] == "flash")
    over = r["build"]["model_flash"] - 36000
    assert over > 0 and f"{over} bytes more than small's flash" in flash["message"]
    assert "code" in flash["message"] and "runtime" in flash["message"]


@needs_toolchain
def test_check_falls_back_to_the_estimate_for_a_model_compile_refuses(digits_fp32):
    code, r = _json("check", digits_fp32, "-t", "stm32h747", "--json")
    assert (
        code == 0
        and r["sizes"] == "estimate"
        and "does not take this model" in r["sizes_how"]
        and "quantize" in r["sizes_how"]
    )
    assert r["build"] is None


@needs_toolchain
def test_analyze_shows_the_exact_sizes_for_a_target(resnet):
    _, r = _json("analyze", resnet, "-t", "stm32h747", "--json")
    assert r["summary"]["sizes"] == "build"
    fp = r["footprint"]
    assert fp["exact"] and fp["target"] == "stm32h747" and fp["flash_bytes"] == fp["build"]["model_flash"]
    text = CliRunner().invoke(app, ["analyze", str(resnet), "-t", "stm32h747", "--no-layers", "--plan-rows", "0"])
    assert "Flash/RAM on stm32h747" in text.stdout and "flash, model total" in text.stdout


def test_without_the_toolchain_check_says_the_sizes_are_estimates(resnet, no_toolchain):
    code, r = _json("check", resnet, "-t", "stm32h747", "--json")
    assert code == 0 and r["sizes"] == "estimate" and r["build"] is None
    assert "arm-none-eabi-gcc is not installed" in r["sizes_how"] and "make mcu-tools" in r["sizes_how"]
    assert r["weights_bytes"] == load_graph(resnet).weight_bytes  # the graph's figure
    text = CliRunner().invoke(app, ["check", str(resnet), "-t", "stm32h747"]).stdout
    assert "estimate" in text and "arm-none-eabi-gcc" in text


def test_without_the_toolchain_analyze_says_the_sizes_are_estimates(resnet, no_toolchain):
    _, plain = _json("analyze", resnet, "--json")
    assert plain["summary"]["sizes"] == "estimate" and "footprint" not in plain
    _, r = _json("analyze", resnet, "-t", "stm32h747", "--json")
    assert r["summary"]["sizes"] == "estimate" and r["footprint"]["exact"] is False
    assert "arm-none-eabi-gcc" in r["footprint"]["how"]


def test_a_folder_compiled_without_the_toolchain_gives_the_estimate_and_why(resnet, tmp_path, no_toolchain):
    art = compile_model(resnet, "stm32h747", tmp_path / "resnet")
    assert art.manifest["build"] is None
    code, r = _json("check", resnet, "-t", "stm32h747", "--compiled", art.dir, "--json")
    assert (
        code == 0
        and r["sizes"] == "estimate"
        and str(art.dir) in r["sizes_how"]
        and "no usable build record" in r["sizes_how"]
    )


def test_compiled_folder_of_another_model_or_target_is_an_error(resnet, digits_int8, tmp_path):
    art = compile_model(digits_int8, "stm32h747", tmp_path / "digits", measure=False)
    other = CliRunner().invoke(app, ["check", str(resnet), "-t", "stm32h747", "--compiled", str(art.dir)])
    assert other.exit_code == 2 and "was compiled from" in other.stderr
    wrong = CliRunner().invoke(app, ["check", str(digits_int8), "-t", "stm32f412", "--compiled", str(art.dir)])
    assert wrong.exit_code == 2 and "compiled for stm32h747, not stm32f412" in wrong.stderr
