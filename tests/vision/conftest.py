"""Vision fixtures: one real server shared by the module's tests (models load once)."""

from __future__ import annotations

import pytest

from support import Server


@pytest.fixture(scope="module")
def vision_server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("vision"), config={"grpc_port": None})
    yield s
    s.stop()
