"""The OpenAI-compatible routes, driven by the official `openai` SDK against a real server and
the real SmolLM2 model."""

from __future__ import annotations

import json
import urllib.request

import openai
import pytest

from serving.conftest import API_KEY

MODEL = "smollm2-135m-instruct"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]

pytestmark = pytest.mark.slow


def test_models_lists_the_llm(openai_client):
    ids = [m.id for m in openai_client.models.list()]
    assert MODEL in ids


def test_chat_non_stream_and_stream_agree(openai_client):
    whole = openai_client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, seed=1, max_tokens=32)
    assert whole.object == "chat.completion"
    choice = whole.choices[0]
    assert choice.message.role == "assistant" and "Paris" in choice.message.content
    assert choice.finish_reason == "stop"
    u = whole.usage
    assert u.prompt_tokens > 10 and u.completion_tokens > 0 and u.total_tokens == u.prompt_tokens + u.completion_tokens

    chunks = list(
        openai_client.chat.completions.create(
            model=MODEL,
            messages=QUESTION,
            temperature=0,
            seed=1,
            max_tokens=32,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == u.completion_tokens
    assert chunks[-1].usage.prompt_tokens == u.prompt_tokens


def test_multi_turn_messages_reach_the_model(openai_client):
    messages = [
        {"role": "user", "content": "The password is banana."},
        {"role": "assistant", "content": "Got it: the password is banana."},
        {"role": "user", "content": "What is the password?"},
    ]
    r = openai_client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=24)
    assert "banana" in r.choices[0].message.content
    # the same question without the earlier turns cannot know it: the history came from the request
    r2 = openai_client.chat.completions.create(model=MODEL, messages=messages[-1:], temperature=0, max_tokens=24)
    assert "banana" not in r2.choices[0].message.content


def test_length_limit_and_legacy_completions(openai_client):
    r = openai_client.completions.create(model=MODEL, prompt="Tell me a long story about a dragon.", max_tokens=3)
    assert r.object == "text_completion" and r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3 and r.choices[0].text
    pieces = list(openai_client.completions.create(model=MODEL, prompt="Say hi.", max_tokens=3, stream=True))
    assert pieces[-1].choices[0].finish_reason == "length"
    assert "".join(p.choices[0].text for p in pieces)


def test_wrong_key_is_401_in_openai_shape(base_url):
    bad = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model=MODEL, messages=QUESTION)
    assert e.value.status_code == 401
    body = e.value.body
    assert body["type"] == "authentication_error" and body["code"] == "invalid_api_key" and "Bearer" in body["message"]


def test_bad_image_parts_are_a_clear_400(openai_client):
    """Image parts go to the vlm unit (tests/vision); one that is no image, or not a data: URL, is a 400."""
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]  # a PNG's signature only
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    assert "not an image" in e.value.body["message"]
    remote = [content[0], {"type": "image_url", "image_url": {"url": "http://example.invalid/cat.jpg"}}]
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": remote}])
    assert "data: URL" in e.value.body["message"] and e.value.body["param"] == "messages[0].content[1].image_url"
    # text-only parts are accepted and flattened
    r = openai_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content[:1]}], max_tokens=2
    )
    assert r.choices[0].message.content


def test_unknown_model_and_bad_fields(openai_client):
    with pytest.raises(openai.NotFoundError) as e:
        openai_client.chat.completions.create(model="gpt-9", messages=QUESTION)
    assert e.value.body["code"] == "model_not_found" and MODEL in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=7)
    assert e.value.body["param"] == "temperature"


def _get(url: str, key: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_health_is_public_metrics_need_the_key(base_url, openai_client):
    openai_client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=4)
    status, body = _get(base_url + "/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert _get(base_url + "/metrics")[0] == 401
    status, text = _get(base_url + "/metrics", API_KEY)
    text = text.decode()
    assert status == 200
    assert 'emberflow_requests_total{protocol="openai",route="/v1/chat/completions",status="200"}' in text
    assert 'emberflow_request_errors_total{protocol="openai",route="(refused)",status="401"}' in text
    tokens = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(f'emberflow_llm_completion_tokens_total{{model="{MODEL}"}}')
    ]
    assert tokens and tokens[0] >= 4
    assert f'emberflow_llm_tokens_per_second{{model="{MODEL}"}}' in text


def test_request_size_limit(http_server):
    """A body over the limit is refused from its Content-Length, before it is read."""
    import socket

    with socket.create_connection(("127.0.0.1", http_server.http_port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + API_KEY.encode() + b"\r\nContent-Length: 17000000\r\n\r\n{"
        )
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert "limit" in json.loads(body)["error"]["message"]


def test_a_client_that_hangs_up_stops_the_generation(openai_client, http_server):
    """Closing a stream mid-answer aborts decoding: the unit stops generating the ~600 unread tokens."""
    from emberflow.client import Client

    def llm_infos(c) -> list[dict]:
        tasks = [t["work_id"] for t in c.request("sys", "lstask")["data"]["tasks"] if t["unit"] == "llm"]
        return [c.request(w, "taskinfo")["data"] for w in tasks]

    with Client("127.0.0.1", http_server.port) as c:
        c.request("sys", "auth", data=API_KEY)
        openai_client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=4)  # a warm task
        aborted_before = sum(i["stats"]["aborted"] for i in llm_infos(c))
        story = [{"role": "user", "content": "Write a very long story about a dragon, with many chapters."}]
        stream = openai_client.chat.completions.create(
            model=MODEL, messages=story, temperature=0.8, max_tokens=600, stream=True
        )
        for i, _ in enumerate(stream):
            if i == 3:
                break
        stream.close()
        r = openai_client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=4)
        assert r.choices[0].message.content
        infos = llm_infos(c)
        assert sum(i["stats"]["aborted"] for i in infos) > aborted_before  # the generation was cut short
        story_lengths = [n for i in infos for n in i["unit"]["generated_tokens"] if n > 4]
        assert story_lengths and max(story_lengths) < 600, story_lengths
