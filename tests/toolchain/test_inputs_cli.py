"""Sample loading for quantize/validate/profile, and the small CLI commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
from toolchain_models import real_model
from typer.testing import CliRunner

from emberflow.cli import app
from emberflow.toolchain.inputs import InputsError, load_samples

SPECS = [("image", (1, 1, 8, 8), "float32")]
runner = CliRunner()


def test_random_samples_are_reproducible():
    a = load_samples("random:3", SPECS, seed=1)
    b = load_samples("random:3", SPECS, seed=1)
    assert len(a) == 3 and all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b))
    assert a[0]["image"].dtype == np.float32 and a[0]["image"].shape == (1, 1, 8, 8)


def test_npz_and_directory_sources(tmp_path, digits):
    np.savez(tmp_path / "batch.npz", image=digits["test_x"][:5])  # rank 4, batch 5 -> 5 samples of batch 1
    assert len(load_samples(str(tmp_path / "batch.npz"), SPECS)) == 5
    np.savez(tmp_path / "stacked.npz", arr_0=digits["test_x"][:3, None])  # rank 5: leading sample axis
    assert load_samples(str(tmp_path / "stacked.npz"), SPECS)[2]["image"].shape == (1, 1, 8, 8)
    d = tmp_path / "dir"
    d.mkdir()
    for i in range(4):
        np.save(d / f"{i}.npy", digits["test_x"][i : i + 1])
    assert len(load_samples(str(d), SPECS)) == 4


def test_input_errors_say_what_to_do(tmp_path):
    np.savez(tmp_path / "wrong.npz", pixels=np.zeros((2, 1, 8, 8), np.float32), other=np.zeros(2))
    with pytest.raises(InputsError, match="no array for input 'image'"):
        load_samples(str(tmp_path / "wrong.npz"), SPECS)
    with pytest.raises(InputsError, match="expected 'random'"):
        load_samples(str(tmp_path / "missing.npz"), SPECS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputsError, match=r"no \.npz or \.npy"):
        load_samples(str(tmp_path / "empty"), SPECS)


def test_targets_and_analyze_json():
    res = runner.invoke(app, ["targets", "--json"])
    assert res.exit_code == 0
    assert {t["name"] for t in json.loads(res.stdout)} >= {"csk6", "bm1684x"}
    res = runner.invoke(app, ["analyze", str(real_model("wake_alexa")), "--json"])
    data = json.loads(res.stdout)
    assert data["summary"]["format"] == "tflite" and data["memory_plan"]["arena_bytes"] > 0
    assert data["memory_plan"]["table"][0].keys() == {"tensor", "offset", "begin", "end", "size"}


def test_pack_applies_shapes_only_where_they_belong(tmp_path, digits_fp32):
    out = tmp_path / "two.ember"
    res = runner.invoke(
        app,
        [
            "pack",
            str(digits_fp32),
            f"cls={real_model('ocr_cls')}",
            "-o",
            str(out),
            "--shape",
            "x=1x3x48x192",
            "-t",
            "csk6",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "does not fit csk6" in res.stdout
    bad = runner.invoke(app, ["analyze", str(digits_fp32), "--shape", "x=1x3x48x192"])
    assert bad.exit_code == 2 and "not inputs of" in bad.stderr
