"""The .ember format: round trip, alignment, and clear errors for truncated or corrupted files."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toolchain_models import real_model
from typer.testing import CliRunner

from emberflow.cli import app
from emberflow.runtime import Engine, EngineError
from emberflow.runtime.bundle import ALIGN, BundleError, read_bundle
from emberflow.toolchain.pack import PackError, inspect_bundle, pack_models


@pytest.fixture()
def bundle(tmp_path, digits_int8):
    out = tmp_path / "digits.ember"
    pack_models([f"digits={digits_int8}"], out, target="stm32f412", norms=["image=0/16"])
    return out


def test_manifest_describes_everything(bundle, digits_int8):
    b = read_bundle(bundle)
    m = b.manifest
    stage = m["graphs"][0]["stages"][0]
    assert m["target"] == "stm32f412" and m["provenance"]["tool"].startswith("emberflow ")
    assert stage["inputs"][0] == {
        "name": "image",
        "shape": [1, 1, 8, 8],
        "dtype": "float32",
        "normalization": {"mean": [0.0], "std": [16.0]},
    }
    assert stage["quantization"]["tensors"] > 0 and stage["memory_plan"]["arena_bytes"] > 0
    assert len(stage["source"]["sha256"]) == 64
    assert stage["check"]["fits"] is True and stage["check"]["summary"].startswith("fits stm32f412")
    assert b.section(stage["section"]) == digits_int8.read_bytes()
    for name, (_, offset, _, _) in b.sections.items():
        assert offset % ALIGN == 0, name


def test_inspect_cli(bundle):
    res = CliRunner().invoke(app, ["inspect", str(bundle)])
    assert res.exit_code == 0 and "graph/digits/0" in res.stdout and "CRC verified" in res.stdout
    assert inspect_bundle(bundle)["sections"][0]["name"] == "manifest"


def test_truncated_bundle(bundle, tmp_path):
    data = bundle.read_bytes()
    for cut in (10, 200, len(data) - 5):
        p = tmp_path / f"cut{cut}.ember"
        p.write_bytes(data[:cut])
        with pytest.raises(BundleError, match="truncated"):
            read_bundle(p)
    with pytest.raises(EngineError, match="truncated"):
        Engine(p)


def test_wrong_magic_and_newer_version(bundle, tmp_path):
    data = bytearray(bundle.read_bytes())
    p = tmp_path / "x.ember"
    p.write_bytes(b"PK\x03\x04" + bytes(data[4:]))
    with pytest.raises(BundleError, match=r"not an \.ember bundle"):
        read_bundle(p)
    newer = bytearray(data)
    newer[8:10] = struct.pack("<H", 9)
    import zlib

    newer[36:40] = struct.pack("<I", zlib.crc32(bytes(newer[:36])))
    p.write_bytes(bytes(newer))
    with pytest.raises(BundleError, match="upgrade emberflow"):
        read_bundle(p)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_flipped_byte_is_detected(bundle, data):
    raw = bytearray(bundle.read_bytes())
    b = read_bundle(bundle)
    # choose a byte inside the header, the table, or any section
    spans = [(0, 40), (64, 64 + 64 * len(b.sections))] + [
        (off, off + size) for _, off, size, _ in b.sections.values() if size
    ]
    lo, hi = data.draw(st.sampled_from(spans))
    pos = data.draw(st.integers(lo, hi - 1))
    raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    p = bundle.with_name("flipped.ember")
    p.write_bytes(bytes(raw))
    with pytest.raises(BundleError):
        read_bundle(p)


def test_pack_errors(tmp_path, digits_fp32):
    with pytest.raises(PackError, match="not found"):
        pack_models([str(tmp_path / "none.onnx")], tmp_path / "o.ember")
    with pytest.raises(PackError, match="1-24 characters"):
        pack_models([f"{'n' * 30}={digits_fp32}"], tmp_path / "o.ember")
    with pytest.raises(PackError, match="mix onnx and tflite"):
        pack_models([f"a={digits_fp32}", f"a={real_model('wake_alexa')}"], tmp_path / "o.ember")
    with pytest.raises(PackError, match="INPUT=MEAN"):
        pack_models([str(digits_fp32)], tmp_path / "o.ember", norms=["image=0.5"])


@pytest.mark.slow
def test_pack_real_models_and_run_them(tmp_path):
    from toolchain_models import MODEL_FEEDS

    out = tmp_path / "all.ember"
    pack_models(
        [
            f"det={real_model('ocr_det')}",
            f"rec={real_model('ocr_rec')}",
            f"cls={real_model('ocr_cls')}",
            f"emb={real_model('minilm_int8')}",
            f"vad={real_model('silero_vad')}",
            f"tts={real_model('piper_joe')}",
            f"wake={real_model('wake_okay_nabu')}",
        ],
        out,
        target="stm32f412",
    )
    e = Engine(out)
    stages = {g["name"]: g["stages"][0] for g in read_bundle(out).manifest["graphs"]}
    assert not stages["tts"]["check"]["fits"] and any("weights need" in v for v in stages["tts"]["check"]["violations"])
    assert e.run(MODEL_FEEDS["silero_vad"], graph="vad")[1].shape == (2, 1, 128)
    assert e.run(MODEL_FEEDS["piper_joe"], graph="tts")[0].ndim == 4
    direct = Engine(real_model("ocr_rec"))(MODEL_FEEDS["ocr_rec"])[0]
    np.testing.assert_array_equal(e.run(MODEL_FEEDS["ocr_rec"], graph="rec")[0], direct)
    assert e.run(MODEL_FEEDS["minilm_int8"], graph="emb")[0].shape == (1, 4, 384)
