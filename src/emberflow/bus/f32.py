"""`<kind>.f32`: float32 rows with token counts as one binary payload (embeddings on the bus).

Little-endian: `uint32 n, uint32 dim, uint32 tokens[n], float32 vectors[n][dim]`. The embed unit
writes it; the HTTP gateway reads it straight from the control message's binary part, without
JSON floats or base64 on the way.
"""

from __future__ import annotations

from typing import Any


def pack_f32(vectors: Any, tokens: Any) -> bytes:
    """The `embed.f32` output: header (n, dim), token counts, then the float32 rows."""
    import numpy as np

    n, dim = vectors.shape
    return (
        np.array([n, dim], "<u4").tobytes()
        + np.asarray(tokens, "<u4").tobytes()
        + np.ascontiguousarray(vectors, "<f4").tobytes()
    )


def unpack_f32(blob: bytes) -> tuple[Any, Any]:
    """(vectors float32 [n, dim], token counts uint32 [n]) from an `embed.f32` output."""
    import numpy as np

    if len(blob) < 8:
        raise ValueError(f"embed.f32: {len(blob)} bytes is shorter than the header")
    n, dim = (int(v) for v in np.frombuffer(blob, "<u4", 2))
    if len(blob) != 8 + 4 * n + 4 * n * dim:
        raise ValueError(f"embed.f32: {len(blob)} bytes do not hold {n} x {dim} floats")
    return np.frombuffer(blob, "<f4", n * dim, 8 + 4 * n).reshape(n, dim), np.frombuffer(blob, "<u4", n, 8)
