"""The two models of the serving benchmark, as plain functions every server under test calls:
the digits CNN (tensor in, logits out) and MiniLM int8 (texts in, embeddings out).

The peers (LitServe, Ray Serve) run exactly this code; emberflow runs the same ONNX files through
its own units and repository, which is what is being compared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "tests" / "fixtures" / "toolchain" / "digits_cnn.onnx"
DIGITS_DATA = ROOT / "tests" / "fixtures" / "toolchain" / "digits_data.npz"


def minilm_paths() -> tuple[Path, Path]:
    from emberflow.models.catalogue import Catalogue

    cat = Catalogue()
    desc = cat.resolve("minilm-l6-v2-int8").descriptor
    import importlib.util

    spec = importlib.util.find_spec(desc["mode_param"]["tokenizer_package"])
    tok = Path(next(iter(spec.submodule_search_locations))) / desc["mode_param"]["tokenizer_file"]
    return cat.weights_path(desc), tok


class DigitsModel:
    def __init__(self) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(DIGITS), providers=["CPUExecutionProvider"])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"image": images.astype(np.float32, copy=False)})[0]


class MiniLMModel:
    def __init__(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model, tok = minilm_paths()
        self.tokenizer = Tokenizer.from_file(str(tok))
        self.tokenizer.enable_truncation(256)
        self.tokenizer.enable_padding()
        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def __call__(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        hidden = self.session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        w = mask[..., None].astype(np.float32)
        pooled = (hidden * w).sum(1) / np.maximum(w.sum(1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
