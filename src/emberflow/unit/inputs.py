"""The unit contract, input side: from StackFlow inference messages to the values a unit sees.

Pure logic, no I/O: the unit host and the in-process runner (`LocalTask`, `emberflow.testing`)
both use it, so a unit behaves the same in a test and on the bus.

- A whole message becomes one value: RAW bytes as they are, `*base64*` objects decoded (-23).
- A streamed input (`{"delta", "index", "finish"}`) is checked chunk by chunk (-25 on a wrong
  index; index 0 always begins a new input). Units with `on_chunk` get each piece as a `Chunk`;
  others get the pieces joined, once, at the last one.
- Base64 split anywhere by the client (StackFlow's `asr.wav.stream.base64` cuts 4096 characters
  at a time) is carried over to the next chunk until a whole 4-character quantum is there.
- The value is fitted to the kinds the unit declares (`fit_kind`): a clear -2 otherwise.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from emberflow.protocol.envelope import decode_base64
from emberflow.protocol.errors import Code, StackFlowError
from emberflow.unit.base import IO, Chunk

BINARY_KINDS = frozenset({IO.AUDIO_PCM, IO.IMAGE, IO.TENSOR})
TEXT_KINDS = frozenset({IO.TEXT, IO.TEXT_STREAM})


class Incomplete:
    """More chunks of a streamed input must arrive before the unit is called."""

    def __repr__(self) -> str:
        return "INCOMPLETE"


INCOMPLETE = Incomplete()


def fit_kind(data: Any, kinds: Collection[IO], unit_kind: str) -> Any:
    """Fit decoded data to the input kinds a unit declares: structured data needs a JSON input,
    bytes become text for text-only units, anything else is a clear -2."""
    text_only = bool(set(kinds) & TEXT_KINDS) and not set(kinds) & BINARY_KINDS
    if isinstance(data, (dict, list)):
        if IO.JSON in kinds or not kinds:
            return data
        taken = ", ".join(sorted(k.value for k in kinds))
        raise StackFlowError(Code.JSON_FORMAT, "json format error.", detail=f"{unit_kind} takes {taken}, not JSON")
    if text_only and isinstance(data, (bytes, bytearray)):
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise StackFlowError(Code.JSON_FORMAT, "json format error.", detail="text is not UTF-8") from None
    if text_only and not isinstance(data, str):
        raise StackFlowError(
            Code.JSON_FORMAT, "json format error.", detail=f"{unit_kind} expects text, got {type(data).__name__}"
        )
    return data


def decode_whole(object: str, data: Any, payload: bytes | None) -> Any:
    """The value of one whole message: RAW bytes, decoded base64, or the JSON data."""
    if payload is not None:
        return payload  # RAW frame: already binary, never base64 on the bus
    return decode_base64(data) if "base64" in object else data


def join_pieces(pieces: list[Any], object: str) -> Any:
    """The pieces of a streamed input as one value, for units without `on_chunk`."""
    parts = [p for p in pieces if p not in ("", b"", None)]
    if parts and all(isinstance(p, (bytes, bytearray)) for p in parts):
        return b"".join(parts)  # RAW frames: the bytes, joined
    if all(isinstance(p, str) for p in parts):
        return decode_whole(object, "".join(parts), None)
    return parts[0] if len(parts) == 1 else parts  # JSON values


def is_stream_message(object: str, data: Any) -> bool:
    return "stream" in object and isinstance(data, dict) and "delta" in data


def truthy(v: Any) -> bool:
    """StackFlow clients send `finish` as true, "true" or 1."""
    return v is True or (isinstance(v, str) and v.lower() == "true") or v == 1


class InputAssembler:
    """The input state of one task: the streamed input being gathered, if any."""

    def __init__(self, unit_kind: str, kinds: Collection[IO], streams_input: bool):
        self.unit_kind, self.kinds, self.streams_input = unit_kind, frozenset(kinds), streams_input
        self.restart()

    def restart(self) -> None:
        """Forget a half-received input (a wrong index, a wake, a new input at index 0)."""
        self._next_index = 0
        self._pieces: list[Any] = []
        self._b64_carry = ""

    def fit(self, data: Any) -> Any:
        return fit_kind(data, self.kinds, self.unit_kind)

    def feed(self, object: str, data: Any, payload: bytes | None) -> Any:
        """One inference message: a whole value, a `Chunk` (units with `on_chunk`), or
        INCOMPLETE while a streamed input is gathered for `infer`."""
        if not is_stream_message(object, data):
            return self.fit(decode_whole(object, data, payload))
        index = data.get("index")
        if isinstance(index, bool) or not isinstance(index, int):
            index = repr(index)
        elif self.streams_input and index == 0:
            self.restart()  # index 0 begins a new input, even after a failed one
        if index != self._next_index:
            expected = self._next_index
            self.restart()
            raise StackFlowError(Code.STREAM_INDEX, detail=f"expected index {expected}, got {index}")
        last = truthy(data.get("finish"))
        self._next_index = 0 if last else index + 1
        delta = data.get("delta", "")
        if self.streams_input:  # the unit keeps what it needs of each piece
            return Chunk(self.fit(self._decode_piece(object, delta, payload, last)), index, last)
        self._pieces.append(payload if payload is not None else delta)
        if not last:
            return INCOMPLETE
        pieces, self._pieces = self._pieces, []
        return self.fit(join_pieces(pieces, object))

    def _decode_piece(self, object: str, delta: Any, payload: bytes | None, last: bool) -> Any:
        """One chunk on its own; a base64 tail shorter than a quantum waits for the next chunk."""
        if payload is not None or "base64" not in object or not isinstance(delta, str):
            return decode_whole(object, delta, payload)
        text = self._b64_carry + delta
        cut = len(text) if last else len(text) - len(text) % 4
        self._b64_carry = text[cut:]
        return decode_whole(object, text[:cut], None)
