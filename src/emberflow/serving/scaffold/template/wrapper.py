"""__NAME__: an emberflow unit (the AIGES-style "wrapper" of this project).

One class declares everything a service needs: typed setup params (AIGES `wrapperInit` config),
typed request bodies, the result schema, `infer` (AIGES `wrapperOnceExec`), `on_chunk` for
sessions (AIGES `wrapperWrite`, status 0 begin / 1 continue / 2 end) and personalisation resources
(`load_resource`, AIGES `wrapperLoadRes`). emberflow serves it over StackFlow TCP/UART, HTTP
(`/units/__NAME__/infer`, OpenAPI at /docs) and WebSocket sessions (`/units/__NAME__/session`).

    emberflow run-local .      # run once on sample/ and check the result against Result
    emberflow serve .          # every gateway
    python -m pytest tests     # the project's own test
"""

from __future__ import annotations

import base64
import io
import re
import struct
import wave
from typing import Any, Iterator, Literal, Optional

from pydantic import BaseModel, Field

from emberflow.unit import IO, Chunk, Code, Unit, UnitError, UnitParams

# User error codes (AIGES `wrapperError`): raise UnitError(detail=error(code)); clients read the
# code and message in the error's detail.
ERRORS = {10001: "the request has neither text, image nor audio", 10002: "image is not a PNG",
          10003: "audio is not a 16-bit WAV", 10004: "a stop-word list needs at least one word"}


def error(code: int) -> str:
    return f"{code}: {ERRORS[code]}"


class Params(UnitParams):
    """Setup parameters: validated before `setup` runs; their JSON Schema documents the service."""

    response_format: Literal["__NAME__.json", "__NAME__.json.stream"] = Field(
        "__NAME__.json", description="'.stream' sends one result per sentence as it is ready.")
    mode: Literal["words", "chars"] = Field("words", description="What to count in the text.")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Sentences longer than this fraction of the "
                                                              "longest one are flagged as long.")
    max_sentences: int = Field(16, ge=1, le=256, description="Stop after this many sentences.")
    lowercase: bool = Field(False, description="Lower-case the echoed text.")
    greeting: str = Field(..., min_length=1, max_length=64, description="Required: prefixed to every result.")
    stopwords: str = Field("", max_length=128, description="Id of a loaded stop-word resource: words not counted.")


class Request(BaseModel):
    """The typed request body (AIGES `requestCls`): text, image and audio as base64, and JSON options."""

    text: Optional[str] = Field(None, max_length=100_000, description="UTF-8 text.")
    image: Optional[str] = Field(None, description="A PNG image, base64.")
    audio: Optional[str] = Field(None, description="A 16-bit PCM WAV file, base64.")
    options: dict[str, Any] = Field(default_factory=dict, description="Free JSON, echoed back.")


class Result(BaseModel):
    """The declared result (AIGES `responseCls`); `emberflow run-local` checks replies against it."""

    greeting: str
    count: int = Field(ge=0)
    text: Optional[str] = None
    long: bool = False
    image_size: Optional[list[int]] = None
    audio_seconds: Optional[float] = None
    options: dict[str, Any] = Field(default_factory=dict)


class Wrapper(Unit):
    """Counts words, measures images and audio: a template to replace with your model."""

    kind = "__NAME__"
    needs_model = False  # set True and add a catalogue descriptor when the unit loads weights
    max_tasks = 4  # concurrent tasks = instances (AIGES licences); each task has its own instance
    Params = Params
    inputs = {"request": IO.JSON}
    outputs = {"result": IO.JSON}
    Result = Result  # the declared result: in /docs, and run-local validates against it
    resource = IO.TEXT  # personalisation resources are text: here, stop-word lists

    def setup(self, params: Params) -> None:  # AIGES wrapperInit: load models here
        self.p = params

    def teardown(self) -> None:  # AIGES wrapperFini
        pass

    @classmethod
    def load_resource(cls, res_id: str, data: str) -> frozenset[str]:  # AIGES wrapperLoadRes
        """Shared by every task of the process; tasks pick one by id (the `stopwords` param)."""
        words = frozenset(w.lower() for w in data.split())
        if not words:
            raise UnitError(Code.PARAMETER, detail=error(10004))
        return words

    @classmethod
    def unload_resource(cls, res_id: str, resource: frozenset[str]) -> None:  # AIGES wrapperUnloadRes
        pass  # nothing to free for a word set; close files or free memory here

    def on_chunk(self, chunk: Chunk) -> Iterator[dict]:  # AIGES session: wrapperWrite + wrapperRead
        """Text arriving in pieces: a result for each sentence as soon as its end arrives."""
        if chunk.first:
            self.pending = ""
        data = chunk.data if isinstance(chunk.data, dict) else {"text": chunk.data or ""}
        self.pending += Request.model_validate(data).text or ""
        *done, self.pending = re.split(r"(?<=[.!?])\s*", self.pending)
        if chunk.last and self.pending.strip():
            done, self.pending = [*done, self.pending], ""
        for sentence in (s.strip() for s in done):
            if sentence:
                yield self._result(sentence.rstrip(".!?"), 1.0, {})

    def infer(self, data: Any) -> dict | Iterator[dict]:  # AIGES wrapperOnceExec
        req = Request.model_validate(data if isinstance(data, dict) else {"text": data})
        if not (req.text or req.image or req.audio):
            raise UnitError(Code.PARAMETER, detail=error(10001))
        extras = {"image_size": _png_size(req.image) if req.image else None,
                  "audio_seconds": _wav_seconds(req.audio) if req.audio else None, "options": req.options}
        if not self.p.streams_output:
            return self._result(req.text or "", 1.0, extras)
        return self._stream(req.text or "", extras)

    def _stream(self, text: str, extras: dict) -> Iterator[dict]:
        """Streaming output: one result per sentence, each sent as soon as it is ready."""
        sentences = [s.strip() for s in text.replace("?", ".").replace("!", ".").split(".") if s.strip()]
        longest = max((len(s) for s in sentences), default=1)
        for s in sentences[: self.p.max_sentences]:
            if self.context.cancelled.is_set():  # pause / barge-in
                return
            yield self._result(s, len(s) / longest, extras)

    def _result(self, text: str, fraction: float, extras: dict) -> dict:
        stop = self.get_resource(self.p.stopwords) if self.p.stopwords else frozenset()
        words = [w for w in text.split() if w.lower().strip(".,;:!?") not in stop]
        count = len(words) if self.p.mode == "words" else len(text)
        shown = text.lower() if self.p.lowercase else text
        return Result(greeting=self.p.greeting, count=count, text=shown or None,
                      long=fraction > self.p.threshold, **extras).model_dump()


def _png_size(b64: str) -> list[int]:
    raw = base64.b64decode(b64)
    if raw[:8] != b"\x89PNG\r\n\x1a\n":
        raise UnitError(Code.PARAMETER, detail=error(10002))
    width, height = struct.unpack(">II", raw[16:24])
    return [width, height]


def _wav_seconds(b64: str) -> float:
    try:
        with wave.open(io.BytesIO(base64.b64decode(b64))) as w:
            if w.getsampwidth() != 2:
                raise UnitError(Code.PARAMETER, detail=error(10003))
            return round(w.getnframes() / w.getframerate(), 3)
    except (wave.Error, EOFError):
        raise UnitError(Code.PARAMETER, detail=error(10003)) from None


if __name__ == "__main__":  # the AIGES simulator: run once on sample/ and validate
    import sys

    from emberflow.serving.local_run import main

    sys.exit(main(__file__))
