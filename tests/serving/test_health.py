"""/health answers 503 while a preloaded unit is still starting, then 200; probes need no key."""

from __future__ import annotations

import os
import time
from pathlib import Path

import requests

from conftest import Server


def test_health_is_503_while_loading_then_200(tmp_path, monkeypatch):
    here = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    s = Server(tmp_path, config={"token": "k", "preload": ["slowstart"],
                                 "units": {"slowstart": "slow_start_unit:SlowStartUnit"}})
    try:
        url = f"http://127.0.0.1:{s.http_port}"
        first = requests.get(url + "/health", timeout=5)
        assert first.status_code == 503
        assert first.json()["error"]["type"] == "unavailable_error" and "slowstart" in first.json()["error"]["message"]
        assert requests.get(url + "/v2/health/ready", timeout=5).status_code == 503
        assert requests.get(url + "/v2/health/live", timeout=5).status_code == 200
        deadline = time.monotonic() + 30
        while requests.get(url + "/health", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "never became healthy"
            time.sleep(0.2)
        assert requests.get(url + "/v2/health/ready", timeout=5).status_code == 200
    finally:
        s.stop()
