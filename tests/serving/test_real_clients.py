"""The clients people already run, against a real server on loopback: the openai SDK and LangChain's
OpenAIEmbeddings (all-MiniLM-L6-v2, whose vectors must equal `bertkit encode`'s), and huggingface_hub's
InferenceClient on the TEI / HF pipeline routes (tiny models: the shapes are what matters there)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bertkit.serving.config import ServeConfig

TEXTS = ["The cat sat on the mat.", "A dog barks at night", "", "Stock markets fell sharply on Monday."]


@pytest.fixture(scope="module")
def minilm_url(minilm_dir, serve):
    with serve(ServeConfig(model="minilm", max_texts=8, api_key="sk-test")) as url:
        yield url


@pytest.fixture(scope="module")
def encoded(minilm_dir, tmp_path_factory) -> np.ndarray:
    """`bertkit encode` (the CLI, in a subprocess) on TEXTS: the reference vectors."""
    folder = tmp_path_factory.mktemp("encode")
    src = folder / "texts.jsonl"
    import json

    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    out = folder / "vectors.npy"
    subprocess.run(
        [sys.executable, "-m", "bertkit.cli.main", "encode", "--model", "minilm", "--input", str(src),
         "--output", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return np.load(out)


def test_openai_sdk_float_and_default_base64_equal_bertkit_encode(minilm_url, encoded):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{minilm_url}/v1", api_key="sk-test", max_retries=0)
    by_default = client.embeddings.create(model="minilm", input=TEXTS)  # the SDK asks for base64 here
    floats = client.embeddings.create(model="minilm", input=TEXTS, encoding_format="float")
    for response in (by_default, floats):
        assert [d.index for d in response.data] == list(range(len(TEXTS)))
        np.testing.assert_allclose(np.array([d.embedding for d in response.data]), encoded, atol=2e-5)
        assert response.model == "minilm" and response.usage.prompt_tokens > len(TEXTS)
    one = client.embeddings.create(model="minilm", input=TEXTS[0], dimensions=384)
    np.testing.assert_allclose(one.data[0].embedding, encoded[0], atol=2e-5)
    assert [m.id for m in client.models.list().data] == ["minilm"]
    with pytest.raises(openai.BadRequestError, match="384 dimensions"):
        client.embeddings.create(model="minilm", input="x", dimensions=256)
    with pytest.raises(openai.UnprocessableEntityError, match="check_embedding_ctx_length=False"):
        client.embeddings.create(model="minilm", input=[[9906, 1917]])
    with pytest.raises(openai.AuthenticationError, match="API key"):
        openai.OpenAI(base_url=f"{minilm_url}/v1", api_key="wrong", max_retries=0).embeddings.create(
            model="minilm", input="x"
        )


def _offline_tiktoken(monkeypatch) -> None:
    """LangChain tokenizes with tiktoken's cl100k_base, a file tiktoken downloads; offline, a byte-level
    encoding stands in (the ids are just as foreign to this model's vocabulary)."""
    tiktoken = pytest.importorskip("tiktoken")
    encoding = tiktoken.Encoding(
        name="bytes",
        pat_str=r"\S+|\s+",
        mergeable_ranks={bytes([i]): i for i in range(256)},
        special_tokens={},
    )
    monkeypatch.setattr(tiktoken, "encoding_for_model", lambda _name: encoding)
    monkeypatch.setattr(tiktoken, "get_encoding", lambda _name: encoding)


def test_langchain_openai_embeddings(minilm_url, encoded, monkeypatch):
    pytest.importorskip("langchain_openai")
    import openai
    from langchain_openai import OpenAIEmbeddings

    texts = [t for t in TEXTS if t]
    want = encoded[[TEXTS.index(t) for t in texts]]
    common = {"model": "minilm", "base_url": f"{minilm_url}/v1", "api_key": "sk-test", "max_retries": 0}
    works = OpenAIEmbeddings(check_embedding_ctx_length=False, **common)
    np.testing.assert_allclose(np.array(works.embed_documents(texts)), want, atol=2e-5)
    np.testing.assert_allclose(np.array(works.embed_query(texts[0])), want[0], atol=2e-5)
    _offline_tiktoken(monkeypatch)
    default = OpenAIEmbeddings(**common)  # sends token ids
    with pytest.raises(openai.UnprocessableEntityError, match="check_embedding_ctx_length=False"):
        default.embed_documents(texts)


def test_token_ids_of_the_models_own_vocab_when_accepted(encoder_dir, serve, http):
    from bertkit.tokenization import Tokenizer

    tok = Tokenizer.from_pretrained(encoder_dir)
    ids = tok.encode("hello world").ids[1:-1]
    with serve(ServeConfig(model=str(encoder_dir), accept_token_ids=True)) as url, http(url) as c:
        by_ids = c.post("/v1/embeddings", json={"input": [ids], "model": "m"}).json()["data"][0]["embedding"]
        by_text = c.post("/v1/embeddings", json={"input": "hello world"}).json()["data"][0]["embedding"]
        np.testing.assert_allclose(by_ids, by_text, atol=1e-6)
        bad = c.post("/v1/embeddings", json={"input": [[tok.vocab_size]]})
        assert bad.status_code == 400 and f"0..{tok.vocab_size - 1}" in bad.json()["error"]["message"]


def test_huggingface_hub_inference_client(encoder_dir, classifier_dir, tagger_dir, serve):
    hub = pytest.importorskip("huggingface_hub")
    with (
        serve(ServeConfig(model=str(encoder_dir))) as url,
        serve(ServeConfig(model=str(classifier_dir))) as cls_url,
    ):
        vectors = hub.InferenceClient(base_url=url).feature_extraction("hello world")
        assert vectors.shape == (1, 32) and vectors.dtype == np.float32
        embed = hub.InferenceClient(model=f"{url}/embed").feature_extraction(["a", "b"], normalize=True)
        np.testing.assert_allclose(np.linalg.norm(embed, axis=1), 1.0, atol=1e-6)
        labels = hub.InferenceClient(base_url=cls_url).text_classification("hello world")
        assert sorted(x.label for x in labels) == ["neg", "pos"]
        assert abs(sum(x.score for x in labels) - 1) < 1e-6 and labels[0].score >= labels[1].score
        top = hub.InferenceClient(base_url=cls_url).text_classification("hello world", top_k=1)
        assert [(x.label, x.score) for x in top] == [(labels[0].label, pytest.approx(labels[0].score))]
    with serve(ServeConfig(model=str(tagger_dir))) as tag_url:
        text = "John Smith lives in Paris"
        entities = hub.InferenceClient(base_url=tag_url).token_classification(
            text, aggregation_strategy="simple"
        )
        for e in entities:
            assert e.entity_group in ("PER", "LOC") and 0 <= e.start < e.end <= len(text)
            assert 0 < e.score <= 1
