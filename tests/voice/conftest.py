"""Voice fixtures."""

from __future__ import annotations

import pytest

from support import Server


@pytest.fixture
def voice_server(tmp_path):
    answer = tmp_path / "answer.wav"
    s = Server(tmp_path, config={"http_port": None, "grpc_port": None, "audio": {"sink": f"file:{answer}"}})
    s.answer_wav = answer
    yield s
    s.stop()
