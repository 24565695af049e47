"""StackFlow message envelope: parsing requests and building replies, byte-exact with the real server.

Replies are compact JSON with sorted keys, UTF-8 unescaped, one `\\n` per message (§2.4, §12.3).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import Any

from emberflow.protocol.errors import Code, StackFlowError

NONE = "None"  # StackFlow's "no payload" marker is this *string*
# emberflow's unit-level actions (work_id is the unit kind, as for setup): personalisation
# resources belong to the unit process and are shared by its tasks.
RESOURCE_ACTIONS = ("load_resource", "unload_resource", "list_resources")


def decode_base64(text: Any, what: str = "base64 data") -> bytes:
    """Base64 from a client, strictly (-23 on anything else): the only place bytes leave JSON."""
    if not isinstance(text, str):
        raise StackFlowError(Code.BASE64, detail=f"{what} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise StackFlowError(Code.BASE64, detail=str(e)) from None


@dataclass(slots=True)
class Request:
    request_id: str
    work_id: str
    action: str
    object: str = NONE
    data: Any = NONE
    # Binary payload of a `{"RAW":N,...}` frame. Kept as bytes: base64 only exists at the JSON edge.
    payload: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        """Unit kind: the work_id before the first dot (`llm.1002` -> `llm`)."""
        return self.work_id.split(".", 1)[0]

    @property
    def is_task_id(self) -> bool:
        head, _, number = self.work_id.partition(".")
        return bool(head) and number.isdigit()

    def to_dict(self) -> dict[str, Any]:
        out = {
            **self.extra,
            "request_id": self.request_id,
            "work_id": self.work_id,
            "action": self.action,
            "object": self.object,
            "data": self.data,
        }
        return out


def parse_request(obj: Any, payload: bytes | None = None) -> Request:
    """Validate a decoded JSON object as a request; raise -2 like the real server otherwise."""
    if not isinstance(obj, dict):
        raise StackFlowError(Code.JSON_FORMAT)
    rid, wid, action = obj.get("request_id"), obj.get("work_id"), obj.get("action")
    if not (isinstance(rid, str) and isinstance(wid, str) and isinstance(action, str)):
        raise StackFlowError(Code.JSON_FORMAT)
    obj_tag = obj.get("object", NONE)
    if not isinstance(obj_tag, str):
        obj_tag = NONE
    extra = {k: v for k, v in obj.items() if k not in ("request_id", "work_id", "action", "object", "data")}
    return Request(rid, wid or "sys", action, obj_tag, obj.get("data", NONE), payload, extra)


def reply(
    request_id: str,
    work_id: str,
    *,
    data: Any = NONE,
    object: str = NONE,
    code: int = 0,
    message: str = "",
) -> dict[str, Any]:
    return {
        "created": int(time.time()),
        "data": data,
        "error": {"code": int(code), "message": message},
        "object": object,
        "request_id": request_id,
        "work_id": work_id,
    }


def error_reply(request_id: str, work_id: str, err: StackFlowError) -> dict[str, Any]:
    data = {"detail": err.detail} if err.detail else NONE
    return reply(request_id, work_id, data=data, code=err.code, message=err.message)


def notice(code: int, message: str) -> dict[str, Any]:
    """Server notices (`reset over`, `reace reset`): request_id "0", no object/data, as the original."""
    return {
        "created": int(time.time()),
        "error": {"code": code, "message": message},
        "request_id": "0",
        "work_id": "sys",
    }


def _base64(value: Any) -> str:
    """Binary data inside a message (PCM, embeddings, images) as base64: the JSON edge."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode(msg: dict[str, Any]) -> bytes:
    # ensure_ascii=False: the real server sends raw UTF-8. No raw newline can appear inside, since
    # json.dumps escapes control characters, so `\n` safely terminates every message.
    try:
        text = json.dumps(msg, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=_base64).encode()
    except UnicodeEncodeError:  # a lone surrogate (from a unit): escaped, the message is still valid JSON
        text = json.dumps(msg, ensure_ascii=True, separators=(",", ":"), sort_keys=True, default=_base64).encode()
    return text + b"\n"
