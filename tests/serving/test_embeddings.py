"""/v1/embeddings with the packaged MiniLM int8 model, through the official `openai` SDK."""

from __future__ import annotations

import numpy as np
import openai
import pytest

MODEL = "minilm-l6-v2-int8"
TEXTS = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
# 3 to over 100 tokens: sub-batches and length buckets of different padded lengths
MIXED = [
    "Hi.",
    "A cheetah is running behind its prey.",
    "Ships sail across the ocean at night. " * 12,
    "The cat sits outside.",
    "Tomorrow it will rain in Paris, and then again on Sunday, as it always does in "
    + "the spring when the wind turns west.",
    "ok",
    "A man is eating food. " * 6,
    "The new movie is awesome.",
]


def reference(texts: list[str]) -> np.ndarray:
    """sentence-transformers' recipe with plain onnxruntime on the same files: the whole batch
    padded to its longest text, mean pooling over real tokens, L2 norm."""
    import importlib.util
    from pathlib import Path

    import onnxruntime as ort
    from tokenizers import Tokenizer

    from emberflow.models.catalogue import Catalogue

    cat = Catalogue()
    desc = cat.resolve(MODEL).descriptor
    pkg = importlib.util.find_spec(desc["mode_param"]["tokenizer_package"]).submodule_search_locations[0]
    tok = Tokenizer.from_file(str(Path(pkg) / desc["mode_param"]["tokenizer_file"]))
    tok.enable_truncation(256)
    tok.enable_padding()
    enc = tok.encode_batch(texts)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    session = ort.InferenceSession(str(cat.weights_path(desc)), providers=["CPUExecutionProvider"])
    hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
    w = mask[..., None].astype(np.float32)
    pooled = (hidden * w).sum(1) / w.sum(1)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def test_embeddings_match_the_unit_run_in_process(openai_client):
    from emberflow.unit.local import LocalTask
    from emberflow.units.embed import EmbedUnit

    r = openai_client.embeddings.create(model=MODEL, input=TEXTS)
    assert [d.index for d in r.data] == [0, 1, 2] and r.model == MODEL
    got = np.array([d.embedding for d in r.data])
    assert got.shape == (3, 384)
    assert r.usage.prompt_tokens == r.usage.total_tokens > len(TEXTS)
    with LocalTask(EmbedUnit, {"model": MODEL}) as task:
        direct = np.array(task.infer({"texts": TEXTS})[0]["embeddings"])
    np.testing.assert_allclose(got, direct, atol=1e-5)
    np.testing.assert_allclose(got, reference(TEXTS), atol=1e-5)
    sims = got @ got.T
    assert np.allclose(np.diag(sims), 1.0, atol=1e-4)
    assert sims[0, 1] > 0.6 > sims[0, 2]  # the paraphrase is close, the unrelated sentence is not


def test_single_string_and_base64(openai_client):
    one = openai_client.embeddings.create(model=MODEL, input=TEXTS[0])
    # the SDK asks for base64 by default when numpy is present and decodes it; ask explicitly for both
    as_float = openai_client.embeddings.create(model=MODEL, input=[TEXTS[0]], encoding_format="float")
    np.testing.assert_allclose(one.data[0].embedding, as_float.data[0].embedding, atol=1e-6)


def test_embedding_errors(openai_client):
    with pytest.raises(openai.NotFoundError):
        openai_client.embeddings.create(model="smollm2-135m-instruct", input="x")  # not an embedding model
    with pytest.raises(openai.BadRequestError):
        openai_client.embeddings.create(model=MODEL, input=[])


def test_concurrent_requests_share_unit_inferences(openai_client, base_url):
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from serving.conftest import API_KEY

    texts = [f"sentence number {i} about {'cats' if i % 2 else 'ships'}" for i in range(24)]
    together = openai_client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    expected = np.array([d.embedding for d in together.data])
    with ThreadPoolExecutor(12) as pool:
        got = list(
            pool.map(
                lambda t: (
                    openai_client.embeddings.create(model=MODEL, input=t, encoding_format="float").data[0].embedding
                ),
                texts,
            )
        )
    # each request gets its own row, whoever it was batched with
    np.testing.assert_allclose(np.array(got), expected, atol=1e-5)
    text = requests.get(base_url + "/metrics", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10).text
    values = {
        line.split("{")[0]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(("emberflow_batch_size_sum", "emberflow_batch_size_count")) and MODEL in line
    }
    assert values["emberflow_batch_size_sum"] / values["emberflow_batch_size_count"] > 1.2


@pytest.mark.parametrize("parallel", [1, 2, 3])
def test_sub_batches_length_buckets_and_f32_match_the_reference(parallel):
    from emberflow.unit.local import LocalTask
    from emberflow.units.embed import EmbedUnit, _buckets, _split, unpack_f32

    expected = reference(MIXED)
    with LocalTask(EmbedUnit, {"model": MODEL, "parallel": parallel}) as task:
        as_json = task.infer({"texts": MIXED})[0]
    with LocalTask(EmbedUnit, {"model": MODEL, "parallel": parallel, "response_format": "embed.f32"}) as task:
        blob = task.infer({"texts": MIXED})[0]
        single = [unpack_f32(task.infer(t)[0])[0][0] for t in MIXED[:3]]

    lengths = np.array(as_json["tokens_per_text"])  # 3 to 98 tokens
    parts = _split(lengths, parallel)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(MIXED))) and len(parts) == parallel
    assert all(np.all(np.diff(lengths[p]) >= 0) for p in parts)  # each sub-batch sorted by length
    runs = [b for p in parts for b in _buckets(lengths, p)]
    assert len(runs) == 3 and max(lengths[runs[0]]) < 30  # the six short texts are not padded to 98
    assert isinstance(blob, bytes)
    vectors, tokens = unpack_f32(blob)
    assert vectors.shape == (len(MIXED), 384) and vectors.dtype == np.float32
    assert tokens.tolist() == as_json["tokens_per_text"] and as_json["tokens"] == int(tokens.sum())
    np.testing.assert_allclose(np.array(as_json["embeddings"]), expected, atol=1e-5)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_allclose(np.array(single), expected[:3], atol=1e-5)  # alone = inside a batch
    with pytest.raises(ValueError):
        unpack_f32(blob[:-4])


def test_mixed_lengths_through_the_gateway_match_the_reference(openai_client):
    """The binary path (raw float32 on the bus, base64 to the router) and both encodings."""
    as_float = openai_client.embeddings.create(model=MODEL, input=MIXED, encoding_format="float")
    as_b64 = openai_client.embeddings.create(model=MODEL, input=MIXED)  # the SDK decodes base64
    expected = reference(MIXED)
    np.testing.assert_allclose(np.array([d.embedding for d in as_float.data]), expected, atol=1e-5)
    np.testing.assert_array_equal(
        np.array([d.embedding for d in as_b64.data], dtype=np.float32),
        np.array([d.embedding for d in as_float.data], dtype=np.float32),
    )
