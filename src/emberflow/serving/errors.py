"""Error bodies in the shape each protocol's clients parse.

OpenAI clients read `{"error": {"message", "type", "param", "code"}}`; KServe v2 / Triton clients
read `{"error": "<message>"}`. The route family decides which one a failure gets.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from emberflow.serving.tasks import GatewayError

STATUS_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "invalid_request_error", 422: "invalid_request_error",
                429: "rate_limit_error", 503: "server_error", 504: "server_error"}


def is_kserve(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def error_body(path: str, status: int, message: str, type: str | None = None, code: str | None = None,
               param: str | None = None) -> dict:
    if is_kserve(path):
        return {"error": message}
    return {"error": {"message": message, "type": type or STATUS_TYPES.get(status, "server_error"),
                      "param": param, "code": code}}


def error_response(path: str, err: GatewayError) -> JSONResponse:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(err.retry_after)))
    if err.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error_body(path, err.status, err.message, err.type, err.code, err.param),
                        status_code=err.status, headers=headers)
