"""Small user units for the tests, written with the public SDK exactly as a user would."""

from __future__ import annotations

import time
from collections.abc import Iterator

from pydantic import BaseModel, Field

from emberflow.unit import IO, Chunk, Code, Final, Unit, UnitError, UnitParams


class EchoParams(UnitParams):
    response_format: str = "echo.utf-8.stream"
    times: int = Field(1, ge=1, le=10, description="How many times to repeat the input.")
    delay: float = Field(0.0, ge=0.0, le=1.0, description="Seconds between pieces (to test aborts).")
    fail_on: str = Field("", description="Raise when the input equals this text.")


class EchoUnit(Unit[EchoParams]):
    """Repeats its input; repeats upstream text too (for link tests)."""

    kind = "echo"
    max_tasks = 4
    needs_model = False
    Params = EchoParams
    inputs = {"text": IO.TEXT}
    outputs = {"text": IO.TEXT_STREAM}

    def setup(self, params: EchoParams) -> None:
        self.p = params
        self.woken = 0

    def infer(self, text: str) -> Iterator[str]:
        if self.p.fail_on and text == self.p.fail_on:
            raise RuntimeError(f"asked to fail on {text!r}")
        for _ in range(self.p.times):
            if self.p.delay:
                time.sleep(self.p.delay)
            yield text

    def on_wake(self, frame=None) -> None:
        self.woken += 1


class TickerParams(UnitParams):
    response_format: str = "ticker.utf-8"
    system: bool = Field(False, description="Emit each tick as a system frame (like a wake word).")


class TickerUnit(Unit[TickerParams]):
    """Emits one bus event per inference: a stand-in for wake-word or sensor units."""

    kind = "ticker"
    needs_model = False
    Params = TickerParams
    inputs = {"text": IO.TEXT}
    outputs = {"event": IO.EVENT}

    def setup(self, params: TickerParams) -> None:
        self.p = params

    def infer(self, text: str) -> str:
        self.context.emit("ticker.bool", True, system=self.p.system)
        return text


class TallyParams(UnitParams):
    response_format: str = "tally.json.stream"
    stopwords: str = Field("", description="Id of a loaded resource: words not to count.")


class TallyResult(BaseModel):
    words: int = Field(ge=0)
    chunks: int = Field(ge=1)


class TallyUnit(Unit[TallyParams]):
    """Counts the words of a text as it streams in, skipping a personalised stop-word list."""

    kind = "tally"
    needs_model = False
    Params = TallyParams
    inputs = {"text": IO.TEXT}
    outputs = {"tally": IO.JSON}
    Result = TallyResult
    resource = IO.TEXT  # a stop-word list, one or more words per line

    @classmethod
    def load_resource(cls, res_id: str, data: str) -> frozenset[str]:
        words = frozenset(w.lower() for w in data.split())
        if not words:
            raise UnitError(Code.PARAMETER, detail=f"stop-word list {res_id!r} is empty")
        return words

    def setup(self, params: TallyParams) -> None:
        self.p = params
        self.words = self.chunks = 0

    def _count(self, text: str) -> int:
        stop = self.get_resource(self.p.stopwords) if self.p.stopwords else frozenset()
        return sum(1 for w in text.split() if w.lower() not in stop)

    def infer(self, text: str) -> dict:
        return {"words": self._count(text), "chunks": 1}

    def on_chunk(self, chunk: Chunk) -> dict | Final:
        if chunk.first:
            self.words = self.chunks = 0
        self.words += self._count(chunk.data)
        self.chunks += 1
        tally = {"words": self.words, "chunks": self.chunks}
        return Final(tally) if chunk.last else tally
