"""The dashboard's API over real HTTP: the page is public, everything else needs the token, and
actions also need the page's own header, this server's host name and no foreign Origin."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from dashboard.conftest import TOKEN
from emberflow.serving.dashboard.security import SameOrigin

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ACTION = {**AUTH, "X-Emberflow-Dashboard": "1"}


def call(base_url: str, path: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None):
    req = urllib.request.Request(base_url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_the_page_is_public_and_locked_down(base_url):
    status, headers, body = call(base_url, "/")
    assert status == 200 and b'content="1"' in body  # the page knows it must ask for the token
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "connect-src 'self'" in csp and "script-src 'self'" in csp
    assert headers["x-frame-options"] == "DENY"
    assert call(base_url, "/dashboard/static/app.js")[0] == 200


@pytest.mark.parametrize("path", ["/dashboard/api/state", "/dashboard/api/stream", "/dashboard/api/models"])
def test_reading_needs_the_token(base_url, path):
    assert call(base_url, path)[0] == 401
    assert call(base_url, path, headers={"Authorization": "Bearer wrong"})[0] == 401


def test_static_files_cannot_reach_the_api_or_the_disk(base_url):
    for path in (
        "/dashboard/static/../api/state",
        "/dashboard/static/%2e%2e/routes.py",
        "/dashboard/static/../../../../etc/passwd",
        "/dashboard/static/routes.py",
    ):
        assert call(base_url, path)[0] in (400, 404), path


def test_actions_need_the_token_the_header_and_the_same_origin(base_url):
    exit_path = "/dashboard/api/tasks/echo.999999/exit"
    assert call(base_url, exit_path, "POST", {"X-Emberflow-Dashboard": "1"})[0] == 401  # no token
    assert call(base_url, exit_path, "POST", AUTH)[0] == 403  # no header: a form on another site
    assert call(base_url, exit_path, "POST", {**ACTION, "Origin": "http://evil.example"})[0] == 403
    assert call(base_url, exit_path, "POST", {**ACTION, "Host": "evil.example:80"})[0] == 403  # DNS rebinding
    assert call(base_url, exit_path, "POST", ACTION)[0] == 404  # allowed: there is no such task
    origin = base_url.replace("http://", "")
    assert call(base_url, exit_path, "POST", {**ACTION, "Origin": base_url, "Host": origin})[0] == 404


def test_state_lists_the_units_and_flows(base_url):
    status, _, body = call(base_url, "/dashboard/api/state", headers=AUTH)
    state = json.loads(body)
    assert status == 200 and state["token_required"] is True
    assert {"units", "tasks", "graph", "voice", "camera"} <= set(state["snapshot"])
    status, _, body = call(base_url, "/dashboard/api/flows", headers=AUTH)
    assert {f["name"] for f in json.loads(body)["flows"]} >= {"voice-assistant", "transcribe"}


def test_reports_take_only_listed_files(base_url):
    status, _, body = call(
        base_url,
        "/dashboard/api/models/report",
        "POST",
        {**ACTION, "Content-Type": "application/json"},
        json.dumps({"file": "/etc/passwd", "kind": "analyze"}).encode(),
    )
    assert status == 404, body
    status, _, body = call(base_url, "/dashboard/api/models/upload?name=notes.txt", "POST", ACTION, b"hello")
    assert status == 400 and b".onnx or .tflite" in body


@pytest.mark.parametrize(
    ("bound", "host", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1:8080", True),
        ("127.0.0.1", "localhost:8080", True),
        ("127.0.0.1", "[::1]:8080", True),
        ("127.0.0.1", "evil.example:8080", False),
        ("127.0.0.1", "", False),
        ("127.0.0.1", "10.0.0.5:8080", False),
        ("192.168.1.20", "192.168.1.20:8080", True),
        ("192.168.1.20", "evil.example", False),
        ("0.0.0.0", "box.lan:8080", True),
    ],
)
def test_host_names_the_server_was_bound_to(bound, host, allowed):
    assert SameOrigin(bound).host_allowed(host) is allowed
