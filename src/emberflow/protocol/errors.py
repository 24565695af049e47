"""StackFlow error codes with their exact messages (clients print and sometimes compare them)."""

from __future__ import annotations

from enum import Enum, IntEnum

from emberflow.errors import EmberflowError


class Code(IntEnum):
    OK = 0
    FRAMING_RESET = -1
    JSON_FORMAT = -2
    ACTION_MATCH = -3
    INFERENCE_PUSH = -4
    MODEL_LOADING = -5
    UNIT_NOT_EXIST = -6
    UNIT_CALL = -9
    NOT_AVAILABLE = -10
    MODEL_RUN = -11
    FILE = -17
    NO_UNIT_ACTION = -18
    LINK = -20
    TASK_FULL = -21
    PARAMETER = -22
    BASE64 = -23
    EMPTY_DATA = -24
    STREAM_INDEX = -25
    # emberflow extension: a token is configured and this connection has not sent sys.auth.
    UNAUTHORIZED = -26
    # emberflow extension: the task belongs to another client (see "Task ownership" in the README).
    FORBIDDEN = -27


MESSAGES: dict[Code, str] = {
    Code.OK: "",
    Code.FRAMING_RESET: "reace reset",  # sic: the real server's spelling, clients match on it
    Code.JSON_FORMAT: "json format error",
    Code.ACTION_MATCH: "action match false",
    Code.INFERENCE_PUSH: "inference data push false",
    Code.MODEL_LOADING: "Model loading failed.",
    Code.UNIT_NOT_EXIST: "Unit Does Not Exist",
    Code.UNIT_CALL: "unit call false",
    Code.NOT_AVAILABLE: "Not available at the moment.",
    Code.MODEL_RUN: "Model run failed.",
    Code.FILE: "file path error",
    Code.NO_UNIT_ACTION: "not have unit action!",
    Code.LINK: "link false",
    Code.TASK_FULL: "task full",
    Code.PARAMETER: "Parameter format error.",
    Code.BASE64: "Base64 decoding error.",
    Code.EMPTY_DATA: "The inference data is empty.",
    Code.STREAM_INDEX: "Stream data index error.",
    Code.UNAUTHORIZED: "Unauthorized: send sys.auth with the server token first.",
    Code.FORBIDDEN: "Forbidden: the task belongs to another client.",
}


class Reason(str, Enum):
    """Why a request failed, for machines: in-process clients (HTTP) decide by it, never by the
    message text. It never reaches the StackFlow wire, whose bytes stay StackFlow's."""

    TASK_LOST = "task_lost"  # the task died with its unit process, or sys.reset: set it up again
    NOT_FOUND = "not_found"  # what the request names does not exist (a resource id, a task)
    QUEUE_FULL = "queue_full"  # the task's request queue is full: retry later
    CANCELLED = "cancelled"  # the client gave the request up


class StackFlowError(EmberflowError):
    """An error that travels to the client as `{"error": {"code", "message"}}`.

    `message` defaults to the exact StackFlow text for the code; `detail` is emberflow's
    explanation for humans and goes into `data` so the message itself stays verbatim.
    """

    def __init__(
        self, code: Code | int, message: str | None = None, detail: str | None = None, reason: Reason | None = None
    ):
        self.code = Code(code)
        self.message = MESSAGES[self.code] if message is None else message
        self.detail = detail
        self.reason = reason
        super().__init__(f"{int(self.code)} {self.message}" + (f" ({detail})" if detail else ""))
