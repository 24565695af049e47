"""Inbound framing of the StackFlow byte stream (TCP and UART alike).

Accepts everything real clients send: objects with or without a newline, several objects per
read, objects split across reads, junk between objects, and `{"RAW":N,...}` headers followed by
N binary bytes. Unlike the original brace counter it understands JSON strings, so a `{` inside a
prompt cannot break framing, and a raw newline inside a string (never valid JSON) resynchronises
instead of swallowing the following requests. Oversized frames are skipped, not buffered.

The scanner jumps between interesting bytes with a regex, so a 10 MB base64 string costs one scan.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

DEFAULT_MAX_FRAME = 16 * 1024 * 1024

_OUTSIDE = re.compile(rb"[{}]")  # depth 0: anything else is junk
_INSIDE = re.compile(rb'[{}"]')  # inside an object, outside strings
_IN_STRING = re.compile(rb'["\\\n]')  # inside a string
_RAW_PREFIX = b'{"RAW":'


@dataclass(slots=True)
class Frame:
    """One complete JSON object (bytes), plus the binary payload of a RAW frame."""

    text: bytes
    payload: bytes | None = None


@dataclass(slots=True)
class StrayBrace:
    """A `}` at depth 0: the original server resets and answers `-1 reace reset`."""


@dataclass(slots=True)
class Malformed:
    """A frame that cannot be JSON (raw newline inside a string); the decoder has resynchronised."""

    text: bytes


@dataclass(slots=True)
class Oversize:
    """A frame larger than the limit; it was skipped and the stream is in sync again.

    `raw`: the size came from a `{"RAW":N}` header, so staying in sync means discarding the N
    bytes the client announced, however many that is; a connection closes instead.
    """

    size: int
    limit: int
    raw: bool = False


Event = Frame | StrayBrace | Malformed | Oversize


class FrameDecoder:
    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME):
        self.max_frame = max_frame
        self._buf = bytearray()
        self._scan = 0  # next byte of _buf to look at
        self._depth = 0
        self._in_string = False
        self._skipped = 0  # bytes of the current frame already thrown away (oversize)
        self._raw_header: bytes | None = None
        self._raw_need = 0  # payload bytes still expected after a RAW header
        self._raw_skip = 0  # payload bytes of an oversized RAW frame still to discard
        self._resyncing = False  # after a Malformed frame its tail is junk, not stray braces

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def in_frame(self) -> bool:
        """A frame has begun and not ended yet (an object, a RAW payload, or a skipped one)."""
        return bool(self._depth or self._raw_header is not None or self._raw_skip)

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        buf = self._buf
        while buf:
            if self._raw_skip:
                n = min(self._raw_skip, len(buf))
                del buf[:n]
                self._raw_skip -= n
                continue
            if self._raw_header is not None:
                if len(buf) < self._raw_need:
                    break
                payload = bytes(buf[: self._raw_need])
                del buf[: self._raw_need]
                events.append(Frame(self._raw_header, payload))
                self._raw_header = None
                continue
            if self._depth == 0:
                m = _OUTSIDE.search(buf)
                if m is None:
                    buf.clear()  # junk between objects
                    break
                i = m.start()
                if buf[i] == 0x7D:  # '}'
                    del buf[: i + 1]
                    if not self._resyncing:
                        events.append(StrayBrace())
                    continue
                del buf[:i]
                self._resyncing = False
                self._depth, self._scan = 1, 1
                continue
            if not self._advance(events):
                if self._depth and len(buf) > self.max_frame:
                    # Keep counting braces but stop holding the bytes.
                    self._skipped += self._scan
                    del buf[: self._scan]
                    self._scan = 0
                break
        return events

    def _advance(self, events: list[Event]) -> bool:
        """Scan inside an object. Returns False when more input is needed."""
        buf = self._buf
        if self._in_string:
            m = _IN_STRING.search(buf, self._scan)
            if m is None:
                self._scan = len(buf)
                return False
            i = m.start()
            c = buf[i]
            if c == 0x22:  # '"'
                self._in_string = False
                self._scan = i + 1
            elif c == 0x5C:  # backslash escapes the next byte
                if i + 1 >= len(buf):
                    self._scan = i
                    return False
                self._scan = i + 2
            else:  # raw newline inside a string: not JSON, resync at the next object
                text = bytes(buf[:i])
                del buf[: i + 1]
                self._reset_frame()
                self._resyncing = True
                events.append(
                    Oversize(self._take_skipped() + len(text), self.max_frame) if self._skipped else Malformed(text)
                )
            return True
        m = _INSIDE.search(buf, self._scan)
        if m is None:
            self._scan = len(buf)
            return False
        i = m.start()
        c = buf[i]
        self._scan = i + 1
        if c == 0x22:
            self._in_string = True
        elif c == 0x7B:  # '{'
            self._depth += 1
        else:
            self._depth -= 1
            if self._depth == 0:
                text = bytes(buf[: i + 1])
                del buf[: i + 1]
                self._scan = 0
                self._complete(text, events)
        return True

    def _complete(self, text: bytes, events: list[Event]) -> None:
        size = self._take_skipped() + len(text)
        if size > self.max_frame:
            events.append(Oversize(size, self.max_frame))
            return
        if text.startswith(_RAW_PREFIX):
            raw = _raw_size(text)
            if raw is not None:
                size = raw
                if size > self.max_frame:
                    self._raw_skip = size
                    events.append(Oversize(size, self.max_frame, raw=True))
                elif size == 0:
                    events.append(Frame(text, b""))
                else:
                    self._raw_header, self._raw_need = text, size
                return
        events.append(Frame(text))

    def _reset_frame(self) -> None:
        self._depth, self._in_string, self._scan = 0, False, 0

    def _take_skipped(self) -> int:
        n, self._skipped = self._skipped, 0
        return n


# A browser (or curl) talking HTTP to the StackFlow port: the request line's method, a space, and
# a request target. StackFlow clients send JSON objects, so such a start is never theirs.
HTTP_METHODS = (b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE", b"PRI")
_HTTP_TARGETS = (b"/", b"*", b"http://", b"https://")
_HTTP_STARTS = tuple(m + b" " + t for m in HTTP_METHODS for t in _HTTP_TARGETS)
HTTP_SNIFF_BYTES = max(len(s) for s in _HTTP_STARTS)


def looks_like_http(first: bytes) -> bool | None:
    """Whether the first bytes of a connection are an HTTP request line; None: too few bytes to tell."""
    if any(first.startswith(s) for s in _HTTP_STARTS):
        return True
    if any(s.startswith(first) for s in _HTTP_STARTS):
        return None
    return False


# JSON escapes, in the order that matters: an escaped backslash (so `\\ud800` in the JSON text is a
# backslash and `ud800`), a valid surrogate pair, then a surrogate escape on its own.
_ESCAPES = re.compile(
    rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)
_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]")


def has_lone_surrogate(text: bytes) -> bool:
    """Whether JSON text escapes a lone UTF-16 surrogate (`"\\ud800"`). Python decodes it into a
    string that cannot be encoded again, so it is refused where JSON enters instead of failing
    somewhere later (a reply, a unit). Raw UTF-8 bytes cannot carry one: strict decoding refuses them."""
    if not _SURROGATE_HINT.search(text):
        return False
    return any(len(m.group()) == 6 for m in _ESCAPES.finditer(text))


def _raw_size(text: bytes) -> int | None:
    try:
        size = json.loads(text).get("RAW")
    except (ValueError, RecursionError, AttributeError):
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return None
    return size
