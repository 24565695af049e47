"""Fixtures the hardening tests share."""

from __future__ import annotations

import pytest

from serving.repo_models import DIGITS, add_model
from support import Server


@pytest.fixture(scope="module")
def kserve(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kserve-edge")
    add_model(tmp / "models", "digits", 1, DIGITS, "max_batch_size: 8\ninstances: 1\n")
    s = Server(tmp, config={"model_repository": str(tmp / "models")})
    yield s
    s.stop()
