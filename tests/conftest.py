"""Shared fixtures: real emberflow servers started on loopback as subprocesses."""

from __future__ import annotations

import pytest

from support import Server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One server shared by tests that don't care about work-id numbering."""
    s = Server(tmp_path_factory.mktemp("server"))
    yield s
    s.stop()


@pytest.fixture
def fresh_server(tmp_path):
    """A server of its own: the work-id counter starts at 1000, nothing else is running."""
    s = Server(tmp_path)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def llm_params():
    return {
        "model": "qwen2.5-0.5B-prefill-20e",
        "response_format": "llm.utf-8.stream",
        "input": "llm.utf-8.stream",
        "enoutput": True,
        "max_token_len": 48,
        "temperature": 0.0,
        "seed": 7,
    }
