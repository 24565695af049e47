"""Small user units for the tests, written with the public SDK exactly as a user would."""

from __future__ import annotations

import time
from typing import Iterator

from pydantic import Field

from emberflow.unit import IO, Unit, UnitParams


class EchoParams(UnitParams):
    response_format: str = "echo.utf-8.stream"
    times: int = Field(1, ge=1, le=10, description="How many times to repeat the input.")
    delay: float = Field(0.0, ge=0.0, le=1.0, description="Seconds between pieces (to test aborts).")
    fail_on: str = Field("", description="Raise when the input equals this text.")


class EchoUnit(Unit):
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


class TickerUnit(Unit):
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
