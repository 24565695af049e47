"""One emberflow server with the HTTP gateway and an API key, shared by the serving tests."""

from __future__ import annotations

import pytest

from support import Server

API_KEY = "sk-emberflow-test"


@pytest.fixture(scope="package")
def http_server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("http"), config={"token": API_KEY})
    assert s.http_port, "the server printed no 'emberflow: http on' line:\n" + "".join(s.log)
    yield s
    s.stop()


@pytest.fixture(scope="package")
def base_url(http_server):
    return f"http://127.0.0.1:{http_server.http_port}"


@pytest.fixture(scope="package")
def openai_client(base_url):
    from openai import OpenAI

    return OpenAI(base_url=base_url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)
