"""OpenAI audio routes on the voice units: /v1/audio/transcriptions (whisper unit) and
/v1/audio/speech (tts unit). OpenAI model names (`whisper-1`, `tts-1`) map to the default
installed model of that type; catalogue names and StackFlow aliases work as well."""

from __future__ import annotations

import base64
from typing import Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from emberflow.serving.errors import GatewayError

router = APIRouter(prefix="/v1/audio", tags=["OpenAI"])
MAX_AUDIO_BYTES = 25 * 1024 * 1024  # OpenAI's own upload limit


def _model_for(gw: Any, name: str, model_type: str) -> str:
    """A catalogue model of `model_type`: the one named, else the default installed one."""
    try:
        desc = gw.catalogue.resolve(name).descriptor
        if desc.get("type") == model_type:
            if not gw.catalogue.is_installed(desc):
                raise GatewayError(
                    404,
                    f"The model `{name}` is not installed: run `emberflow models install {desc['mode']}`",
                    type="invalid_request_error",
                    code="model_not_found",
                )
            return desc["mode"]
    except KeyError:
        pass
    default = gw.default_model(model_type)
    if default is None:
        raise GatewayError(
            404,
            f"no {model_type} model is installed (`emberflow models list`)",
            type="invalid_request_error",
            code="model_not_found",
            param="model",
        )
    return default


def _payload(msgs: list[dict[str, Any]]) -> Any:
    """The unit's one whole result (text, or base64 audio)."""
    for m in reversed(msgs):
        if m.get("data") not in (None, "None"):
            return m["data"]
    raise GatewayError(500, "the unit produced no result")


@router.post("/transcriptions")
async def transcriptions(
    request: Request,
    file: UploadFile = File(..., description="WAV or raw 16 kHz S16LE"),
    model: str = Form(...),
    language: str | None = Form(None),
    response_format: Literal["json", "text", "verbose_json"] = Form("json"),
    temperature: float | None = Form(None),
    prompt: str | None = Form(None),
) -> Any:
    gw = request.app.state.gateway
    audio = await file.read(MAX_AUDIO_BYTES + 1)
    if len(audio) > MAX_AUDIO_BYTES:
        raise GatewayError(413, f"audio files are limited to {MAX_AUDIO_BYTES} bytes")
    if not audio:
        raise GatewayError(400, "the uploaded file is empty", type="invalid_request_error", param="file")
    if audio[:4] != b"RIFF":
        raise GatewayError(
            400,
            "send WAV audio (mp3/ogg/webm are not decoded on the device)",
            type="invalid_request_error",
            param="file",
        )
    params: dict[str, Any] = {"model": _model_for(gw, model, "asr"), "response_format": "asr.utf-8"}
    if language:
        params["language"] = language
    text = _payload(await gw.tasks.run("whisper", params, "", "whisper.wav.base64", audio))
    if response_format == "text":
        return PlainTextResponse(text + "\n")
    body: dict[str, Any] = {"text": text}
    if response_format == "verbose_json":
        body.update(task="transcribe", language=language or "en")
    return JSONResponse(body)


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    input: str = Field(..., min_length=1, max_length=4096)
    voice: str = "default"
    response_format: Literal["wav", "pcm", "mp3", "opus", "aac", "flac"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)


@router.post("/speech")
async def speech(req: SpeechRequest, request: Request) -> Response:
    gw = request.app.state.gateway
    if req.response_format not in ("wav", "pcm"):
        raise GatewayError(
            400,
            f"response_format {req.response_format!r} is not encoded on the device; "
            "ask for 'wav' or 'pcm' (16-bit mono, 16 kHz)",
            type="invalid_request_error",
            param="response_format",
        )
    fmt = "tts.wav" if req.response_format == "wav" else "tts.pcm"
    params = {"model": _model_for(gw, req.model, "tts"), "response_format": fmt, "speed": max(0.3, min(3.0, req.speed))}
    data = _payload(await gw.tasks.run("tts", params, req.input, "tts.utf-8"))
    audio = base64.b64decode(data) if isinstance(data, str) else bytes(data)
    media = "audio/wav" if req.response_format == "wav" else "audio/pcm"
    return Response(audio, media_type=media)
