"""OpenAI-compatible routes: /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings.

Wire shapes follow shared/spec/serving.md §5.2. The LLM unit does the work through its
`llm.chat_completion` input (the whole conversation plus per-request sampling in one inference),
so one warm task per model serves every HTTP conversation without keeping history between them.

Image parts (`image_url` with a data: URL, or `input_image`) go to the vlm unit instead, through
its `vlm.chat_completion` input, streaming included: to the named vlm model, or, when an LLM is
named, to the default vlm grounded with that LLM. Nothing is fetched: http(s) image URLs get a 400.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from emberflow.serving.batching import DeadlineExceeded, QueueFull
from emberflow.serving.errors import GatewayError, error_body

router = APIRouter(prefix="/v1", tags=["OpenAI"])

CHAT_TYPES = ("llm", "vlm")
EMBED_TYPES = ("embed",)


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None
    image_url: str | dict[str, Any] | None = None


def _image_bytes(i: int, j: int, part: ContentPart) -> str:
    """The base64 of an image part's data: URL (checked here, so bad images are a 400, not a unit error)."""
    import base64
    import binascii

    url = part.image_url if isinstance(part.image_url, str) else (part.image_url or {}).get("url")
    where = f"messages[{i}].content[{j}].image_url"
    if not isinstance(url, str) or not url:
        raise GatewayError(
            400,
            f"{where}: an image part needs image_url.url (a data: URL)",
            type="invalid_request_error",
            param=where,
            code="invalid_image",
        )
    if not url.startswith("data:"):
        raise GatewayError(
            400,
            f"{where}: only data: URLs are accepted (data:image/jpeg;base64,...); emberflow "
            "runs offline and fetches nothing",
            type="invalid_request_error",
            param=where,
            code="invalid_image_url",
        )
    head, _, data = url.partition(",")
    if ";base64" not in head:
        raise GatewayError(
            400,
            f"{where}: the data: URL must be base64-encoded",
            type="invalid_request_error",
            param=where,
            code="invalid_image",
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise GatewayError(
            400,
            f"{where}: the data: URL is not valid base64",
            type="invalid_request_error",
            param=where,
            code="invalid_image",
        ) from None
    if not raw:
        raise GatewayError(
            400, f"{where}: the image is empty", type="invalid_request_error", param=where, code="invalid_image"
        )
    return data


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class SamplingFields(BaseModel):
    model_config = ConfigDict(extra="allow")  # logit_bias, user, tools… are accepted and ignored
    model: str
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=32768)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1, description="Only one choice per request is supported.")
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=2**32 - 1)


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=32768)


class CompletionRequest(SamplingFields):
    prompt: str | list[str]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"


def _gateway(request: Request) -> Any:
    return request.app.state.gateway


# --- /v1/models --------------------------------------------------------------------------------
@router.get("/models")
async def list_models(request: Request) -> dict:
    gw = _gateway(request)
    data = [
        {"id": d["mode"], "object": "model", "created": int(gw.started), "owned_by": "emberflow"}
        for d in gw.catalogue.models.values()
        if d.get("type") in (*CHAT_TYPES, *EMBED_TYPES) and gw.catalogue.is_installed(d)
    ]
    return {"object": "list", "data": data}


# --- chat and completions ----------------------------------------------------------------------
IMAGE_PARTS = ("image_url", "input_image")


def _has_images(messages: list[ChatMessage]) -> bool:
    return any(isinstance(m.content, list) and any(p.type in IMAGE_PARTS for p in m.content) for m in messages)


def _content(i: int, msg: ChatMessage, images: bool) -> Any:
    """Text, or (for the vlm) a list of text and `{"type": "image", "data": base64}` parts."""
    if msg.content is None or isinstance(msg.content, str):
        return msg.content or ""
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(msg.content):
        if part.type == "text":
            parts.append({"type": "text", "text": part.text or ""})
        elif part.type in IMAGE_PARTS and images:
            parts.append({"type": "image", "data": _image_bytes(i, j, part)})
        else:
            raise GatewayError(
                400,
                f"messages[{i}]: content part type {part.type!r} is not supported; use 'text' and 'image_url' parts",
                type="invalid_request_error",
                param=f"messages[{i}].content",
                code="unsupported_content",
            )
    if not images:
        return "".join(p["text"] for p in parts)
    return parts


def _chat_data(req: SamplingFields, messages: list[dict[str, str]]) -> dict[str, Any]:
    stop = [req.stop] if isinstance(req.stop, str) else (req.stop or [])
    max_tokens = getattr(req, "max_completion_tokens", None) or req.max_tokens
    return {
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "seed": req.seed,
        "stop": stop,
    }


def _vlm_params(gw: Any, desc: dict[str, Any]) -> dict[str, Any]:
    """The vlm task for a request with images: the named vlm model, or the default vlm grounded
    with the named LLM."""
    if desc.get("type") == "vlm":
        return {"model": desc["mode"], "response_format": "vlm.utf-8.stream", "enoutput": True}
    vlm = gw.default_model("vlm")
    if vlm is None:
        raise GatewayError(
            400,
            "the request has image parts, but no vlm model is installed: run `emberflow models install grounded-vlm`",
            type="invalid_request_error",
            code="vision_unsupported",
        )
    return {"model": vlm, "llm": desc["mode"], "response_format": "vlm.utf-8.stream", "enoutput": True}


async def _deltas(
    gw: Any, model: str, data: dict[str, Any], usage: dict[str, Any], vlm: dict[str, Any] | None = None
) -> AsyncIterator[str]:
    """Text pieces of one completion; fills `usage` (and records tokens/s) when the unit reports it."""
    first = last = None
    route = (
        ("vlm", vlm, "vlm.chat_completion") if vlm is not None else ("llm", gw.llm_params(model), "llm.chat_completion")
    )
    async for msg in gw.tasks.stream(route[0], route[1], data, route[2]):
        if msg.get("object") == "llm.usage":
            usage.update(msg["data"])
            continue
        piece = (msg.get("data") or {}).get("delta", "")
        if piece:
            last = time.perf_counter()
            first = first or last
            yield piece
    if usage:
        gw.metrics.llm_tokens.labels(model).inc(usage.get("completion_tokens", 0))
        gw.metrics.llm_prompt_tokens.labels(model).inc(usage.get("prompt_tokens", 0))
        n = usage.get("completion_tokens", 0)
        if first is not None and last is not None and last > first and n > 1:
            gw.metrics.llm_tokens_per_second.labels(model).set((n - 1) / (last - first))


def _usage(u: dict[str, Any]) -> dict[str, int]:
    p, c = int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0))
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


async def _primed(gen: AsyncIterator[str]) -> tuple[list[str], AsyncIterator[str]]:
    """Read the first piece before answering, so setup errors still get a proper HTTP status."""
    try:
        return [await gen.__anext__()], gen
    except StopAsyncIteration:
        return [], gen


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


@router.post("/chat/completions")
async def chat_completions(req: ChatCompletionRequest, request: Request) -> Any:
    gw = _gateway(request)
    desc = gw.require_model(req.model, CHAT_TYPES)
    images = _has_images(req.messages) or desc.get("type") == "vlm"
    vlm = _vlm_params(gw, desc) if images else None
    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": _content(i, m, images)}
        for i, m in enumerate(req.messages)
    ]
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            raise GatewayError(
                400,
                f"messages[{i}]: tool messages are not supported by this model",
                type="invalid_request_error",
                param=f"messages[{i}].role",
            )
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    usage: dict[str, Any] = {}
    head, gen = await _primed(_deltas(gw, req.model, _chat_data(req, messages), usage, vlm))
    base = {"id": cid, "created": created, "model": req.model, "system_fingerprint": None}
    if not req.stream:
        text = "".join(head) + "".join([p async for p in gen])
        return {
            **base,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None, "tool_calls": None},
                    "logprobs": None,
                    "finish_reason": usage.get("finish_reason", "stop"),
                }
            ],
            "usage": _usage(usage),
        }
    include_usage = bool(req.stream_options and req.stream_options.include_usage)

    def chunk(delta: dict, finish: str | None) -> bytes:
        return _sse(
            {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
        )

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""}, None)
        try:
            for piece in head:
                yield chunk({"content": piece}, None)
            async for piece in gen:
                yield chunk({"content": piece}, None)
        except GatewayError as e:  # mid-stream: the SDK raises APIError on an `error` event
            yield _sse(error_body("/v1", e.status, e.message, e.type, e.code))
            yield b"data: [DONE]\n\n"
            return
        yield chunk({}, usage.get("finish_reason", "stop"))
        if include_usage:
            yield _sse({**base, "object": "chat.completion.chunk", "choices": [], "usage": _usage(usage)})
        yield b"data: [DONE]\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.post("/completions")
async def completions(req: CompletionRequest, request: Request) -> Any:
    """The legacy prompt API. Chat-tuned models get the prompt as one user turn."""
    gw = _gateway(request)
    gw.require_model(req.model, ("llm",))  # a prompt has no images: the LLM itself
    prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
    if len(prompts) != 1:
        raise GatewayError(
            400,
            "send one prompt per request (a list of exactly one string)",
            type="invalid_request_error",
            param="prompt",
        )
    cid, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    usage: dict[str, Any] = {}
    head, gen = await _primed(_deltas(gw, req.model, _chat_data(req, [{"role": "user", "content": prompts[0]}]), usage))
    base = {"id": cid, "object": "text_completion", "created": created, "model": req.model, "system_fingerprint": None}
    if not req.stream:
        text = "".join(head) + "".join([p async for p in gen])
        return {
            **base,
            "choices": [
                {"text": text, "index": 0, "logprobs": None, "finish_reason": usage.get("finish_reason", "stop")}
            ],
            "usage": _usage(usage),
        }
    include_usage = bool(req.stream_options and req.stream_options.include_usage)

    def chunk(text: str, finish: str | None) -> bytes:
        return _sse({**base, "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]})

    async def events() -> AsyncIterator[bytes]:
        try:
            for piece in head:
                yield chunk(piece, None)
            async for piece in gen:
                yield chunk(piece, None)
        except GatewayError as e:
            yield _sse(error_body("/v1", e.status, e.message, e.type, e.code))
            yield b"data: [DONE]\n\n"
            return
        yield chunk("", usage.get("finish_reason", "stop"))
        if include_usage:
            yield _sse({**base, "choices": [], "usage": _usage(usage)})
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


# --- embeddings --------------------------------------------------------------------------------
@router.post("/embeddings")
async def embeddings(req: EmbeddingRequest, request: Request) -> Any:
    gw = _gateway(request)
    gw.require_model(req.model, EMBED_TYPES)
    texts = [req.input] if isinstance(req.input, str) else req.input
    if not texts or len(texts) > 256:
        raise GatewayError(
            400, "input must be a string or a list of 1 to 256 strings", type="invalid_request_error", param="input"
        )
    try:
        vectors, counts = await gw.embed_batcher(req.model).submit([texts])
    except QueueFull as e:
        raise GatewayError(429, str(e), type="rate_limit_error", code="queue_full", retry_after=1) from None
    except DeadlineExceeded as e:
        raise GatewayError(504, str(e), code="timeout") from None
    if req.encoding_format == "base64":
        import base64

        import numpy as np

        vectors = [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vectors]
    tokens = int(sum(counts))
    return JSONResponse(
        {
            "object": "list",
            "model": req.model,
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
