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
