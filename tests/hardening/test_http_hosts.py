"""Issue 15 item 3 (HTTP): the gateway answers only to its own names. `Host` (DNS rebinding: a page
whose domain now resolves to 127.0.0.1) and `Origin` (a page of another site, WebSockets included)
must name this server or one of allowed_hosts; anything else is 403 before any route runs."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from hardening.wire import http_request
from support import Server


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("hosts"))
    yield s
    s.stop()


def test_a_host_header_naming_another_host_is_refused(web):
    """DNS rebinding: evil.example resolves to 127.0.0.1, and the browser sends `Host: evil.example`."""
    status, body = http_request(web, "/health", {"Host": "evil.example"})
    assert status == 403 and "allowed_hosts" in json.loads(body)["error"]["message"]
    status, body = http_request(web, "/v2/health/live", {"Host": f"evil.example:{web.http_port}"})
    assert status == 403 and isinstance(json.loads(body)["error"], str)  # KServe's error shape
    for host in (f"127.0.0.1:{web.http_port}", "localhost", f"[::1]:{web.http_port}", "LOCALHOST."):
        assert http_request(web, "/health", {"Host": host})[0] == 200


def test_a_request_from_a_page_of_another_site_is_refused(web):
    status, _ = http_request(web, "/v2/repository/index", {"Origin": "http://evil.example"}, method="POST", body=b"{}")
    assert status == 403
    assert http_request(web, "/health", {"Origin": "null"})[0] == 403  # sandboxed frames and file: pages
    assert http_request(web, "/health", {"Origin": f"http://localhost:{web.http_port}"})[0] == 200


def test_a_websocket_from_another_origin_is_refused(web):
    url = f"ws://127.0.0.1:{web.http_port}/units/echo/session"
    with pytest.raises(InvalidStatus) as e:
        connect(url, origin="http://evil.example", open_timeout=20)
    assert e.value.response.status_code == 403
    with connect(url, origin=f"http://127.0.0.1:{web.http_port}", open_timeout=20) as ws:
        ws.send(json.dumps({"status": 3, "data": "hi", "params": {}}))
        assert json.loads(ws.recv(timeout=60))["status"] in (1, 2)


def test_allowed_hosts_adds_names_and_a_star_turns_the_check_off():
    from emberflow.serving.guard import HostGuard

    guard = HostGuard(None, bound="127.0.0.1", allowed=["ai.example.com"])
    assert guard.allows("ai.example.com") and guard.allows("myhost") and not guard.allows("evil.example")
    assert not guard.allows("192.168.1.9")  # an address this server is not bound to
    assert HostGuard(None, bound="0.0.0.0", allowed=[]).allows("192.168.1.9")  # bound to every interface
    assert HostGuard(None, bound="127.0.0.1", allowed=["*"]).off
