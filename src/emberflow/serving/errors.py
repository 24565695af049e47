"""Error bodies in the shape each protocol's clients parse.

OpenAI clients read `{"error": {"message", "type", "param", "code"}}`; KServe v2 / Triton clients
read `{"error": "<message>"}`. The route family decides which one a failure gets.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from emberflow.errors import EmberflowError
from emberflow.protocol.errors import Code, Reason


class GatewayError(EmberflowError):
    """A failure the HTTP layer turns into a status code and an error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "server_error",
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.retry_after = retry_after


# StackFlow codes as HTTP statuses: the request was wrong (400), a limit was hit (429), the
# service cannot serve it now (503); anything else is the server's fault (500).
_BAD_REQUEST = {Code.PARAMETER, Code.JSON_FORMAT, Code.BASE64, Code.EMPTY_DATA, Code.STREAM_INDEX}
_UNAVAILABLE = {Code.MODEL_LOADING, Code.UNIT_CALL, Code.NOT_AVAILABLE}


def unit_error(msg: dict[str, Any]) -> GatewayError:
    """Turn a StackFlow error reply into an HTTP error with the unit's own reason, by its code
    and (for in-process replies) its machine-readable `error.reason`, never by its text."""
    err = msg.get("error", {})
    code = int(err.get("code", Code.MODEL_RUN))
    data = msg.get("data")
    detail = data.get("detail") if isinstance(data, dict) else None
    text = f"{err.get('message', '')} ({detail})" if detail else str(err.get("message", ""))
    reason = err.get("reason")
    if reason == Reason.NOT_FOUND:
        return GatewayError(404, text, type="not_found_error", code="not_found")
    if code in _BAD_REQUEST:
        return GatewayError(400, text, type="invalid_request_error", code=f"stackflow_{-code}")
    if code == Code.TASK_FULL:
        return GatewayError(429, text, type="rate_limit_error", code="task_full", retry_after=1)
    if code in _UNAVAILABLE or reason == Reason.TASK_LOST:
        return GatewayError(503, text, type="server_error", code=f"stackflow_{-code}", retry_after=2)
    return GatewayError(500, text, type="server_error", code=f"stackflow_{-code}")


STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "server_error",
    504: "server_error",
}


def is_kserve(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def error_body(
    path: str, status: int, message: str, type: str | None = None, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    if is_kserve(path):
        return {"error": message}
    return {
        "error": {
            "message": message,
            "type": type or STATUS_TYPES.get(status, "server_error"),
            "param": param,
            "code": code,
        }
    }


def error_response(path: str, err: GatewayError) -> JSONResponse:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(err.retry_after)))
    if err.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        error_body(path, err.status, err.message, err.type, err.code, err.param),
        status_code=err.status,
        headers=headers,
    )
