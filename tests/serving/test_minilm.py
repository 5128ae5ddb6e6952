"""all-MiniLM-L6-v2 behind the real server: /encode equals sentence-transformers' encode (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from bertkit.serving.config import ServeConfig


@pytest.mark.slow
def test_minilm_encode_matches_sentence_transformers(minilm_dir, data_dir, serve, http):
    st = pytest.importorskip("sentence_transformers")
    lines = (data_dir / "glue" / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:65]
    texts = [line.split("\t")[0] for line in lines]
    want = st.SentenceTransformer(str(minilm_dir), device="cpu").encode(texts, batch_size=32)
    with serve(ServeConfig(model="minilm", max_texts=64)) as url, http(url) as c:
        info = c.get("/info").json()
        got = np.array(c.post("/encode", json={"texts": texts}).json()["embeddings"])
    assert info["dimensions"] == 384 and info["pooling"] == "mean" and info["normalize"] is True
    assert info["limits"]["max_length_tokens"] == 256  # sentence_bert_config.json
    cosine = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cosine.min() >= 0.9999
    np.testing.assert_allclose(got, want, atol=1e-4)
