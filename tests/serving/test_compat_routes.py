"""TEI and HF pipeline routes against references: transformers' pipelines and models on the same folders
(entities compared one by one for every aggregation strategy), bertkit's own routes, and TEI's JSON shapes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from bertkit.serving.config import ServeConfig

transformers = pytest.importorskip("transformers")

NER_TEXTS = ["John Smith lives in Paris with Mary", "unaffable bankers met in the city of London yesterday"]


@pytest.fixture(scope="module")
def ner_url(ner_dir, serve):
    with serve(ServeConfig(model=str(ner_dir), max_length=64)) as url:
        yield url


@pytest.fixture(scope="module")
def cls_url(classifier_dir, serve):
    with serve(ServeConfig(model=str(classifier_dir), max_texts=2)) as url:
        yield url


@pytest.fixture(scope="module")
def enc_url(encoder_dir, serve):
    with serve(ServeConfig(model=str(encoder_dir), max_texts=2, max_length=16)) as url:
        yield url


def _same_entities(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        for key in ("entity", "entity_group", "word", "start", "end", "index"):
            if key in w:
                assert g[key] == w[key], (key, g, w)
        assert g["score"] == pytest.approx(float(w["score"]), abs=1e-5)


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification_equals_the_transformers_pipeline(ner_url, ner_dir, http, strategy):
    pipe = transformers.pipeline("token-classification", model=str(ner_dir), aggregation_strategy=strategy)
    with http(ner_url) as c:
        for text in NER_TEXTS:
            got = c.post("/", json={"inputs": text, "parameters": {"aggregation_strategy": strategy}}).json()
            want = pipe(text)
            assert want, "the fixture should tag something"
            _same_entities(got, want)
        batch = c.post(
            "/predict", json={"inputs": NER_TEXTS, "parameters": {"aggregation_strategy": strategy}}
        )
        assert [len(x) for x in batch.json()] == [len(pipe(t)) for t in NER_TEXTS]


SUBWORD_NER_TEXTS = [
    "John Smith lives in Paris with Mary",
    "unaffable bankers met Peter Blackburn in the city of London yesterday, didn't they?",
    "Café owners in Zürich (and São Paulo) rejected the EU's call.",
]


@pytest.fixture(scope="module", params=["roberta", "albert", "xlm-roberta"])
def subword_ner_dir(request, subword_dirs, tmp_path_factory):
    """A tiny random RoBERTa (byte-level BPE), ALBERT or XLM-R (SentencePiece) tagger, sharpened like ner_dir."""
    import shutil
    import warnings

    from bertkit.tasks import build_task
    from bertkit.tokenization import Tokenizer
    from bertkit.training.checkpoint import save_model_folder
    from bertkit.training.config import TrainConfig

    family = request.param
    base = tmp_path_factory.mktemp(f"{family}-base")
    for f in subword_dirs[{"xlm-roberta": "xlmr"}.get(family, family)].iterdir():
        shutil.copyfile(f, base / f.name)
    tokenizer = Tokenizer.from_pretrained(base)
    size = dict(vocab_size=tokenizer.vocab_size, hidden_size=24, num_hidden_layers=2, num_attention_heads=3,
                intermediate_size=37, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    if family in ("roberta", "xlm-roberta"):
        cls = transformers.RobertaConfig if family == "roberta" else transformers.XLMRobertaConfig
        config = cls(**size, max_position_embeddings=66, type_vocab_size=1)
    else:
        config = transformers.AlbertConfig(**size, embedding_size=16, max_position_embeddings=64)
    torch.manual_seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transformers.AutoModel.from_config(config).save_pretrained(base)
    task = build_task("tagging", {"labels": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]})
    model, _ = task.build_model(str(base))
    with torch.no_grad():
        model.classifier.weight.mul_(20)
    out = tmp_path_factory.mktemp(f"{family}-ner") / "tagger"
    save_model_folder(out, model, tokenizer, task, TrainConfig(max_seq_length=64))
    return out


def test_subword_token_classification_words_equal_the_pipeline(subword_ner_dir, serve, http):
    """RoBERTa's `Ġ` and ALBERT's / XLM-R's `▁` pieces, every aggregation strategy: the `word` of each entity (and which
    pieces make a word) is the pipeline's, not WordPiece's join (which left the markers in, 8 of 10 cases)."""
    with serve(ServeConfig(model=str(subword_ner_dir), max_length=64)) as url, http(url) as c:
        for strategy in ["none", "simple", "first", "average", "max"]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the pipeline warns that BPE / SentencePiece have no real words
                pipe = transformers.pipeline(
                    "token-classification", model=str(subword_ner_dir), aggregation_strategy=strategy
                )
                wants = [pipe(text) for text in SUBWORD_NER_TEXTS]
            words = [w["word"] for want in wants for w in want]
            assert all(wants) and (strategy == "none" or not any("Ġ" in w or "▁" in w for w in words))
            for text, want in zip(SUBWORD_NER_TEXTS, wants, strict=True):
                params = {"aggregation_strategy": strategy}
                got = c.post("/", json={"inputs": text, "parameters": params}).json()
                _same_entities(got, want)


def test_long_text_is_tagged_in_windows_with_offsets_into_the_whole_text(ner_url, ner_dir, http):
    pipe = transformers.pipeline("token-classification", model=str(ner_dir), aggregation_strategy="simple")
    words = " ".join(NER_TEXTS[0] for _ in range(12))  # ~100 pieces, the server reads 64 at a time
    with http(ner_url) as c:
        got = c.post("/", json={"inputs": words}).json()
        own = c.post("/predict", json={"texts": [words]}).json()["predictions"][0]
    assert max(e["end"] for e in got) > len(words) * 3 // 4  # entities near the end: nothing was cut
    for e in got:
        assert words[e["start"] : e["end"]].lower().replace(" ", "") == e["word"].replace("##", "").replace(
            " ", ""
        )
    # far from window edges a piece has the same context as in one window: the short text's entities recur
    first = pipe(NER_TEXTS[0])
    assert [(e["start"], e["end"]) for e in got[: len(first) - 1]] == [
        (e["start"], e["end"]) for e in first[:-1]
    ]
    assert own["entities"] and max(e["end"] for e in own["entities"]) > len(words) * 3 // 4


def test_text_classification_equals_the_pipeline(cls_url, classifier_dir, http):
    pipe = transformers.pipeline("text-classification", model=str(classifier_dir))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(classifier_dir)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(classifier_dir))
    texts = ["hello world", "the quick brown fox", "a"]
    with http(cls_url) as c:
        single = c.post("/predict", json={"inputs": texts[0]}).json()
        batch = c.post("/predict", json={"inputs": [[t] for t in texts]}).json()  # 3 > max_texts: split
        pair = c.post("/predict", json={"inputs": ["hello world", "a pair"]}).json()
        raw = c.post("/predict", json={"inputs": texts[0], "raw_scores": True}).json()
        best = c.post("/predict", json={"inputs": texts[0], "return_all": False}).json()
        top1 = c.post(
            "/", json={"inputs": texts[0], "parameters": {"top_k": 1, "function_to_apply": "sigmoid"}}
        )
        root = c.post("/", json={"inputs": texts[1]}).json()
        rerank = c.post("/rerank", json={"query": "hello", "texts": texts, "return_text": True}).json()
    want = pipe(texts[0], top_k=None)
    assert [x["label"] for x in single] == [x["label"] for x in want] and best == single[:1]
    np.testing.assert_allclose([x["score"] for x in single], [x["score"] for x in want], atol=1e-5)
    assert [[x["label"] for x in row] for row in batch] == [
        [x["label"] for x in pipe(t, top_k=None)] for t in texts
    ]
    want_pair = pipe({"text": "hello world", "text_pair": "a pair"}, top_k=None)
    np.testing.assert_allclose([x["score"] for x in pair], [x["score"] for x in want_pair], atol=1e-5)
    with torch.no_grad():
        logits = model(**tok(texts[0], return_tensors="pt")).logits[0].numpy()
    assert {x["label"]: x["score"] for x in raw} == pytest.approx(
        {model.config.id2label[i]: float(v) for i, v in enumerate(logits)}, abs=1e-5
    )
    want_top = pipe(texts[0], top_k=1, function_to_apply="sigmoid")
    assert top1.json() == [
        [{"label": want_top[0]["label"], "score": pytest.approx(want_top[0]["score"], abs=1e-5)}]
    ]
    assert len(root) == 1 and len(root[0]) == 2  # POST / is batch-shaped, as huggingface_hub reads it
    with torch.no_grad():
        pair_logits = model(**tok(["hello"] * 3, texts, return_tensors="pt", padding=True)).logits
    relevance = torch.softmax(pair_logits, -1)[:, -1].tolist()
    assert [r["index"] for r in rerank] == sorted(range(3), key=lambda i: -relevance[i])
    assert [r["score"] for r in rerank] == pytest.approx(sorted(relevance, reverse=True), abs=1e-5)
    assert [r["text"] for r in rerank] == [texts[r["index"]] for r in rerank]


def test_long_text_classification_pools_windows(cls_url, http):
    long_text = " ".join(["the quick brown fox jumps over the lazy dog"] * 20)
    with http(cls_url) as c:
        tei = c.post("/predict", json={"inputs": long_text}).json()
        own = c.post("/predict", json={"texts": [long_text]}).json()["predictions"][0]
        info = c.get("/info").json()
    assert info["long_inputs"] == "windows" and info["auto_truncate"] is True
    assert {x["label"]: x["score"] for x in tei} == pytest.approx(own["probabilities"], abs=1e-5)


def test_qa_pipeline_shape_matches_bertkit_predict(qa_dir, serve, http):
    context = "My name is Wolfgang and I live in Berlin with my cat"
    with serve(ServeConfig(model=str(qa_dir))) as url, http(url) as c:
        got = c.post("/", json={"inputs": {"question": "Where do I live?", "context": context}}).json()
        top = c.post(
            "/", json={"inputs": {"question": "Where?", "context": context}, "parameters": {"top_k": 3}}
        )
        own = c.post("/predict", json={"texts": ["Where do I live?"], "text_pairs": [context]}).json()
    # transformers 5 removed its question-answering pipeline; bertkit's own /predict is the reference
    best = own["predictions"][0]
    assert got["answer"] == best["answer"] and got["start"] == best["start"]
    assert (
        got["end"] == got["start"] + len(got["answer"])
        and context[got["start"] : got["end"]] == got["answer"]
    )
    assert got["score"] == pytest.approx(best["nbest"][0]["probability"])
    answers = top.json()
    assert len(answers) == 3 and answers[0]["score"] >= answers[1]["score"] >= answers[2]["score"]


def test_tei_embedding_routes(enc_url, encoder_dir, http):
    model = transformers.BertModel.from_pretrained(str(encoder_dir)).eval()
    tok = transformers.BertTokenizer.from_pretrained(str(encoder_dir))
    texts = ["hello world", "the quick brown fox", "a b c"]
    with http(enc_url) as c:
        own = np.array(c.post("/encode", json={"texts": texts[:2], "normalize": True}).json()["embeddings"])
        one = c.post("/embed", json={"inputs": texts[0]}).json()
        many = np.array(c.post("/embed", json={"inputs": texts, "normalize": False}).json())  # split: 3 > 2
        by_ids = c.post("/embed", json={"inputs": [tok(texts[0])["input_ids"][1:-1]]}).json()
        per_token = c.post("/embed_all", json={"inputs": texts[1]}).json()
        sim = c.post(
            "/similarity", json={"inputs": {"source_sentence": texts[0], "sentences": texts[1:]}}
        ).json()
        long = "word " * 40
        cut = c.post("/embed", json={"inputs": long}).status_code
        refused = c.post("/embed", json={"inputs": long, "truncate": False})
        wrong_dim = c.post("/embed", json={"inputs": "a", "dimensions": 8})
        empty = c.post("/embed", json={"inputs": []})
        tokens = c.post("/tokenize", json={"inputs": "héllo wörld", "add_special_tokens": False}).json()
        decoded = c.post("/decode", json={"ids": [tok("hello world")["input_ids"]]}).json()
        info = c.get("/info").json()
    assert np.array(one).shape == (1, 32)
    np.testing.assert_allclose(one[0], own[0], atol=1e-6)
    np.testing.assert_allclose(by_ids[0], own[0], atol=1e-6)
    with torch.no_grad():
        hidden = model(**tok(texts[1], return_tensors="pt")).last_hidden_state[0].numpy()
    np.testing.assert_allclose(np.array(per_token[0]), hidden, atol=1e-5)
    unit = many / np.linalg.norm(many, axis=1, keepdims=True)
    np.testing.assert_allclose(sim, unit[1:] @ unit[0], atol=1e-6)
    assert cut == 200 and refused.status_code == 413 and refused.json()["error_type"] == "Validation"
    assert wrong_dim.status_code == 422 and "32 dimensions" in wrong_dim.json()["error"]
    assert empty.status_code == 400 and empty.json()["error_type"] == "Empty"
    text = "héllo wörld"
    for t in tokens[0]:
        piece = text[t["char_start"] : t["char_end"]]
        assert text.encode()[t["start"] : t["stop"]].decode() == piece and t["special"] is False
    assert decoded == ["hello world"]
    assert info["model_type"] == {"embedding": {"pooling": "mean"}} and info["max_input_length"] == 16
    assert {"/embed", "/v1/embeddings", "/rerank"} & set(info["routes"]) == {"/embed", "/v1/embeddings"}


def test_openai_errors_and_429(encoder_dir, serve, http):
    import concurrent.futures as cf

    config = ServeConfig(model=str(encoder_dir), max_queue=2, max_texts=2, max_wait_ms=1500)
    with serve(config) as url, http(url) as c:
        assert c.post("/v1/embeddings", json={"input": "primer"}).status_code == 200
        with cf.ThreadPoolExecutor(1) as pool:
            busy = pool.submit(c.post, "/v1/embeddings", json={"input": ["a", "b"]})
            import time

            time.sleep(0.5)
            refused = c.post("/v1/embeddings", json={"input": "c"})
            assert busy.result().status_code == 200
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 10
        assert refused.json()["error"]["type"] == "server_overloaded"
        bad = c.post("/v1/embeddings", json={"input": [1.5]})
        assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("input[0]")
        assert c.post("/embeddings", json={"input": "x", "user": "u", "extra": 1}).status_code == 200
        assert c.get("/models").json()["data"][0]["id"] == str(encoder_dir)
