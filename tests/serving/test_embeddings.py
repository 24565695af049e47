"""/v1/embeddings with the packaged MiniLM int8 model, through the official `openai` SDK."""

from __future__ import annotations

import numpy as np
import openai
import pytest

MODEL = "minilm-l6-v2-int8"
TEXTS = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]


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
        got = list(pool.map(lambda t: openai_client.embeddings.create(model=MODEL, input=t,
                                                                      encoding_format="float").data[0].embedding, texts))
    # each request gets its own row, whoever it was batched with
    np.testing.assert_allclose(np.array(got), expected, atol=1e-5)
    text = requests.get(base_url + "/metrics", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10).text
    values = {line.split("{")[0]: float(line.split()[-1]) for line in text.splitlines()
              if line.startswith(("emberflow_batch_size_sum", "emberflow_batch_size_count")) and MODEL in line}
    assert values["emberflow_batch_size_sum"] / values["emberflow_batch_size_count"] > 1.2
