"""The unit contract, output side: from what a unit returns or yields to the messages it sends.

Pure logic, no I/O, shared by the unit host and the in-process runner (`LocalTask`,
`emberflow.testing`), so both agree on every case:

- stream formats (`response_format` containing "stream"): each piece is a `finish: false`
  chunk at once; the answer ends with a finish chunk, also when it was aborted, so readers never
  hang. `Final(v)` ends it with content.
- whole formats: one message, the `Final` value, else every piece joined.
- `stream_per_call = False` units (ASR partials over several calls) end their streams
  themselves with `Final`; without it nothing is sent.
- streamed input (`on_chunk`): pieces of any chunk go out at once in a stream format, and only
  the last chunk's answer ends the stream; in a whole format there is one answer, at the last chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from emberflow.unit.base import Chunk, Final


@dataclass(frozen=True, slots=True)
class Out:
    """One message's content: a whole answer (`finish is None`) or a stream chunk."""

    value: Any
    finish: bool | None = None

    def message_data(self, index: int) -> tuple[Any, int]:
        """The message's `data` when it is the `index`-th chunk of its stream, and the next index
        (chunks count from 0 again after each finish)."""
        if self.finish is None:
            return self.value, index
        return {"delta": self.value, "index": index, "finish": self.finish}, 0 if self.finish else index + 1

    @property
    def is_bare_end(self) -> bool:
        """An empty finish chunk: it only ends the stream."""
        return self.finish is True and _empty(self.value)


def _empty(piece: Any) -> bool:
    return isinstance(piece, (str, bytes)) and not piece


def join(pieces: list[Any]) -> Any:
    """Pieces of one whole answer as one value: text or bytes joined, else the one value or the list."""
    if pieces and all(isinstance(p, str) for p in pieces):
        return "".join(pieces)
    if pieces and all(isinstance(p, (bytes, bytearray)) for p in pieces):
        return b"".join(pieces)
    if not pieces:
        return ""
    return pieces[0] if len(pieces) == 1 else pieces


def shape(pieces: Iterable[Any], *, stream: bool, per_call: bool) -> Iterator[Out]:
    """The messages of one `infer`/`on_frame`/`on_wake` result (already split into pieces)."""
    finished = False
    collected: list[Any] = []
    for piece in pieces:
        if isinstance(piece, Final):
            finished = True
            yield Out(piece.value, True if stream else None)
        elif stream:
            if not _empty(piece):
                yield Out(piece, False)
        elif per_call:
            collected.append(piece)
        # else: a partial result in a whole format is not sent (only Final is)
    if not per_call or finished:
        return
    if stream:
        yield Out("", True)
    elif collected:
        yield Out(join(collected))


def cancelled(*, stream: bool, per_call: bool) -> list[Out]:
    """A request cancelled before it ran still gets an end: an empty finish, or an empty answer."""
    if stream:
        return [Out("", True)]
    return [Out("")] if per_call else []


class ChunkShaper:
    """Output of a streamed input (`on_chunk`), which keeps state across its chunks."""

    def __init__(self) -> None:
        self._collected: list[Any] = []  # whole-format results of the chunks so far

    def shape(self, chunk: Chunk, pieces: Iterable[Any], *, stream: bool) -> Iterator[Out]:
        if chunk.first:
            self._collected = []
        final: Final | None = None
        for piece in pieces:
            if chunk.last and isinstance(piece, Final):
                final = piece
                break
            value = piece.value if isinstance(piece, Final) else piece  # a Final before the last chunk
            if not stream:
                self._collected.append(value)
            elif not _empty(value):
                yield Out(value, False)
        if not chunk.last:
            return
        collected, self._collected = self._collected, []
        if stream:
            yield Out(final.value if final is not None else "", True)
        else:
            yield Out(final.value if final is not None else join(collected))
