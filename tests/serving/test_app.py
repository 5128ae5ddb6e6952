"""The real server on loopback: every route for an encoder, a classifier, a QA model and a tagger, checked
against independent references (transformers for embeddings, the Predictor for task outputs); every
malformed request gets its status; the API key; queue-full 503; metrics; concurrent callers."""

from __future__ import annotations

import concurrent.futures as cf
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bertkit.serving.backend import PROBE_BUDGETS
from bertkit.serving.config import ServeConfig

SENTENCES = ["hello world", "the quick brown fox jumps over the lazy dog", "a", "Hello, World! It's 9am."]


def reference_mean_pooling(folder: Path, texts: list[str]) -> np.ndarray:
    """transformers' BertModel + mean pooling over real tokens: the independent reference for /encode."""
    transformers = pytest.importorskip("transformers")
    tok = transformers.BertTokenizer.from_pretrained(str(folder))
    model = transformers.BertModel.from_pretrained(str(folder)).eval()
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return ((hidden * mask).sum(1) / mask.sum(1)).numpy()


@pytest.fixture(scope="module")
def encoder_url(encoder_dir, serve):
    with serve(ServeConfig(model=str(encoder_dir), max_texts=4, max_text_chars=200, max_queue=64)) as url:
        yield url


@pytest.fixture(scope="module")
def classifier_url(classifier_dir, serve):
    with serve(ServeConfig(model=str(classifier_dir), max_wait_ms=20)) as url:
        yield url


def test_encoder_routes(encoder_url, encoder_dir, http):
    with http(encoder_url) as c:
        assert c.get("/health").json() == {"status": "ok"}
        info = c.get("/info").json()
        assert info["task"] is None and info["dimensions"] == 32 and info["pooling"] == "mean"
        assert "/predict" not in info["routes"] and info["limits"]["max_texts_per_request"] == 4
        assert info["device"] == "cpu" and info["limits"]["max_batch_tokens"] in PROBE_BUDGETS  # CPU: probed
        assert info["limits"]["padded_batches"] is False  # the eager encoder runs the real tokens only
        got = c.post("/encode", json={"texts": SENTENCES}).json()
        assert got["dimensions"] == 32 and got["tokens"] > len(SENTENCES)
        vectors = np.array(got["embeddings"])
        np.testing.assert_allclose(vectors, reference_mean_pooling(encoder_dir, SENTENCES), atol=1e-5)
        unit = np.array(
            c.post("/encode", json={"texts": SENTENCES[0], "normalize": True}).json()["embeddings"]
        )
        np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(unit[0], vectors[0] / np.linalg.norm(vectors[0]), atol=1e-6)
        missing = c.post("/predict", json={"texts": ["x"]})
        assert missing.status_code == 404 and "/encode" in missing.json()["error"]


def test_tokenize_matches_the_tokenizer(encoder_url, encoder_dir, http):
    from bertkit.tokenization import Tokenizer

    tok = Tokenizer.from_pretrained(encoder_dir)
    with http(encoder_url) as c:
        out = c.post("/tokenize", json={"texts": SENTENCES[3:], "text_pairs": ["the dog"]}).json()["tokens"][
            0
        ]
    ref = tok.encode(SENTENCES[3], "the dog")
    assert out["ids"] == ref.ids and out["tokens"] == ref.tokens and out["type_ids"] == ref.type_ids
    assert [tuple(o) for o in out["offsets"]] == [tuple(o) for o in ref.offsets]


def test_classifier_predict_equals_the_predictor(classifier_url, classifier_dir, http):
    from bertkit.inference.predictor import Predictor

    predictor = Predictor.from_pretrained(classifier_dir, device="cpu")
    pairs = ["a dog", "a cat", "b", "the end"]
    with http(classifier_url) as c:
        info = c.get("/info").json()
        assert info["task"] == "classification" and info["labels"] == ["neg", "pos"]
        single = c.post("/predict", json={"texts": SENTENCES}).json()["predictions"]
        paired = c.post("/predict", json={"texts": SENTENCES, "text_pairs": pairs}).json()["predictions"]
        raw = c.post(
            "/predict",
            json={"inputs": [{"text": t, "text_pair": p} for t, p in zip(SENTENCES, pairs, strict=True)]},
        )
        assert c.post("/encode", json={"texts": ["still an encoder"]}).status_code == 200
    expect_single = predictor.predict([{"text": t} for t in SENTENCES])
    expect_paired = predictor.predict(
        [{"text": t, "text_pair": p} for t, p in zip(SENTENCES, pairs, strict=True)]
    )
    for got, want in (
        (single, expect_single),
        (paired, expect_paired),
        (raw.json()["predictions"], expect_paired),
    ):
        assert [g["label"] for g in got] == [w["label"] for w in want]
        for g, w in zip(got, want, strict=True):
            for name in ("neg", "pos"):
                assert g["probabilities"][name] == pytest.approx(w["probabilities"][name], abs=1e-6)


def test_qa_predict_equals_the_predictor(qa_dir, serve, http):
    from bertkit.inference.predictor import Predictor

    questions = ["who wrote it?", "where is paris?"]
    contexts = ["the book was written by jane austen in 1813 , long ago .", "paris is in france . " * 12]
    want = Predictor.from_pretrained(qa_dir, device="cpu").predict(
        [{"question": q, "context": x} for q, x in zip(questions, contexts, strict=True)]
    )
    with serve(ServeConfig(model=str(qa_dir))) as url, http(url) as c:
        assert c.get("/info").json()["task"] == "qa"
        got = c.post("/predict", json={"texts": questions, "text_pairs": contexts}).json()["predictions"]
        again = c.post(
            "/predict",
            json={
                "inputs": [{"question": q, "context": x} for q, x in zip(questions, contexts, strict=True)]
            },
        )
        bad = c.post("/predict", json={"inputs": [{"question": "q"}]})
    assert got == again.json()["predictions"]
    assert [(g["answer"], g["start"]) for g in got] == [(w["answer"], w["start"]) for w in want]
    for g, w, context in zip(got, want, contexts, strict=True):
        assert g["nbest"][0]["score"] == pytest.approx(w["nbest"][0]["score"], abs=1e-5)
        if g["start"] >= 0:  # the answer is a span of the context, by character offsets
            assert context[g["start"] : g["start"] + len(g["answer"])] == g["answer"]
    assert bad.status_code == 422 and "context" in bad.json()["error"]


def test_tagger_predict_equals_the_predictor(tagger_dir, serve, http):
    from bertkit.inference.predictor import Predictor

    texts = ["John Smith lives in Paris .", "nobody here"]
    want = Predictor.from_pretrained(tagger_dir, device="cpu").predict([{"text": t} for t in texts])
    with serve(ServeConfig(model=str(tagger_dir))) as url, http(url) as c:
        got = c.post("/predict", json={"texts": texts}).json()["predictions"]
        words = c.post("/predict", json={"inputs": [{"tokens": t.split()} for t in texts]}).json()[
            "predictions"
        ]
    assert got == want
    assert [len(g["tags"]) for g in got] == [len(t.split()) for t in texts] == [len(w["tags"]) for w in words]
    for g, text in zip(got, texts, strict=True):
        for entity in g["entities"]:  # entities carry character offsets into the text
            assert text[entity["start"] : entity["end"]] == entity["text"] and entity["type"] == "PER"


MALFORMED = [
    ("POST", "/encode", b"not json", 400),
    ("POST", "/encode", b'{"texts": ["a"', 400),
    ("POST", "/encode", b"", 400),
    ("POST", "/encode", b"[1, 2]", 422),
    ("POST", "/encode", b'{"texts": [1]}', 422),
    ("POST", "/encode", b'{"texts": null}', 422),
    ("POST", "/encode", b"{}", 422),
    ("POST", "/encode", b'{"texts": ["a"], "bogus": 1}', 422),
    ("POST", "/encode", b'{"texts": ["a"], "normalize": "yes"}', 422),
    ("POST", "/encode", b'{"texts": ["a"], "text_pairs": ["x", "y"]}', 422),
    ("POST", "/encode", b'{"texts": ["a", "b", "c", "d", "e"]}', 413),
    ("POST", "/encode", b'{"texts": ["' + b"x" * 201 + b'"]}', 413),
    ("POST", "/encode", b'{"texts": ["' + b"a " * 80 + b'"], "truncate": false}', 413),
    ("POST", "/tokenize", b'{"texts": ["a"], "text_pairs": ["' + b"y" * 201 + b'"]}', 413),
    ("POST", "/tokenize", b'{"texts": 5}', 422),
    ("GET", "/encode", None, 405),
    ("GET", "/no-such-route", None, 404),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), MALFORMED)
def test_malformed_requests_get_the_right_status(encoder_url, http, method, path, body, status):
    with http(encoder_url) as c:
        r = c.request(method, path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, r.text
        assert r.json()["error"]  # always a message, never a crash page
        assert c.get("/health").status_code == 200  # and the server is still up


def test_oversized_body_is_refused_before_reading(encoder_url, http):
    with http(encoder_url) as c:
        r = c.post(
            "/encode", content=b" " * (4 * 200 * 4 * 2 + 65537), headers={"content-type": "application/json"}
        )
    assert r.status_code == 413 and "exceeds the limit" in r.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "either 'texts'"),
        ({"texts": ["a"], "inputs": [{"text": "a"}]}, "not both"),
        ({"inputs": [{"txt": "a"}]}, "'text' must be a string"),
        ({"inputs": [{"text": "a"}, "b"]}, "inputs.1"),  # {"inputs": ["a"]} is TEI's /predict (test_compat)
        ({"inputs": [{"text": "a"}], "text_pairs": ["b"]}, "goes with 'texts'"),
    ],
)
def test_malformed_predict_requests(classifier_url, http, body, message):
    with http(classifier_url) as c:
        r = c.post("/predict", json=body)
    assert r.status_code == 422 and message in r.json()["error"], r.text


def test_api_key_guards_every_route_but_health(encoder_dir, serve, http):
    config = ServeConfig(model=str(encoder_dir), api_key="s3cret")
    with serve(config) as url:
        with http(url) as anonymous, http(url, "wrong") as wrong, http(url, "s3cret") as good:
            assert anonymous.get("/health").status_code == 200
            for method, path, body in (
                ("GET", "/info", None),
                ("GET", "/metrics", None),
                ("GET", "/docs", None),
                ("POST", "/encode", {"texts": ["a"]}),
                ("POST", "/tokenize", {"texts": ["a"]}),
            ):
                for c in (anonymous, wrong):
                    r = c.request(method, path, json=body)
                    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
                assert good.request(method, path, json=body).status_code == 200, path
            other = anonymous.post("/encode", json={"texts": ["a"]}, headers={"X-API-Key": "s3cret"})
            assert other.status_code == 200


def metric(text: str, name: str, **labels: str) -> float:
    pattern = re.escape(name) + (
        r"\{" + ",".join(f'{k}="{re.escape(v)}"' for k, v in labels.items()) + r"\}" if labels else ""
    )
    match = re.search(r"^" + pattern + r" (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_full_queue_answers_503_with_retry_after_at_once(encoder_dir, serve, http):
    # After a primer (so requests count as frequent), the next request's 4 texts wait up to 3 s for a batch
    # and fill the queue (4); the one after is refused.
    config = ServeConfig(model=str(encoder_dir), max_queue=4, max_texts=4, max_wait_ms=3000)
    with serve(config) as url, http(url) as c:
        assert c.post("/encode", json={"texts": ["primer"]}).status_code == 200
        with cf.ThreadPoolExecutor(1) as pool:
            first = pool.submit(c.post, "/encode", json={"texts": ["a", "b", "c", "d"]})
            deadline = time.monotonic() + 10
            while metric(c.get("/metrics").text, "bertkit_queue_depth", route="/encode") < 4:
                assert time.monotonic() < deadline and not first.done()
                time.sleep(0.01)
            start = time.monotonic()
            refused = c.post("/encode", json={"texts": ["e"]})
            assert time.monotonic() - start < 1.0
            assert first.result().status_code == 200
        text = c.get("/metrics").text
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert "busy" in refused.json()["error"]
    assert metric(text, "bertkit_rejected_total", route="/encode") == 1
    assert metric(text, "bertkit_requests_total", route="/encode", status="503") == 1


def test_concurrent_callers_are_batched_and_get_their_own_answers(classifier_dir, serve, http):
    """16 callers at once share batches. Each model call is held 50 ms (a wrapper around the backend's predict),
    so the callers overlap at the server however slowly this process fires them. With the hold, 2 runs in 6 used
    to serve all 16 inline, one by one, each blocking the event loop while the next one's bytes waited unread
    (the batcher now gives the loop two turns before it decides; since then 8 runs in 8 took 2 batches)."""
    from bertkit.serving.backend import Backend

    config = ServeConfig(model=str(classifier_dir), max_wait_ms=20)
    backend = Backend(config)

    def held(items, predict=backend.predict):
        time.sleep(0.05)
        return predict(items)

    backend.predict = held
    texts = [f"sentence number {i} " + "word " * (i % 7) for i in range(32)]
    with serve(config, backend=backend) as classifier_url, http(classifier_url) as c:
        before = metric(c.get("/metrics").text, "bertkit_batch_size_count", route="/predict")
        alone = [c.post("/predict", json={"texts": [t]}).json()["predictions"][0] for t in texts[:4]]
        start = threading.Barrier(16)

        def call(i: int) -> dict:
            with http(classifier_url) as own:
                start.wait()
                return own.post("/predict", json={"texts": [texts[i], texts[i + 16]]}).json()["predictions"]

        with cf.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(call, range(16)))
        text = c.get("/metrics").text
    for i in range(4):
        assert results[i][0]["label"] == alone[i]["label"]
        assert results[i][0]["probabilities"]["pos"] == pytest.approx(
            alone[i]["probabilities"]["pos"], abs=1e-6
        )
    batches = metric(text, "bertkit_batch_size_count", route="/predict") - before - 4
    assert batches < 16  # 16 concurrent requests shared batches
    assert metric(text, "bertkit_texts_total", route="/predict") >= 36
    assert metric(text, "bertkit_requests_total", route="/predict", status="200") >= 20
    assert metric(text, "bertkit_request_duration_seconds_count", route="/predict") >= 20


def test_a_lone_small_request_runs_on_the_event_loop_by_default(encoder_dir, serve, http):
    """The default server runs a lone request of up to 128 tokens on the event loop thread (no hop to the
    model thread and back); a longer one, or any with --inline-max-tokens 0, goes to the model thread. Same
    answers."""
    from bertkit.serving.backend import Backend

    short = ["a short sentence"]  # 5 tokens
    many = [f"sentence number {i} of forty" for i in range(40)]  # 280 tokens
    seen: dict[int, list[str]] = {}
    for options in ({}, {"inline_max_tokens": 0}):  # the default, then off
        config = ServeConfig(model=str(encoder_dir), max_batch_tokens=4096, **options)
        backend = Backend(config)
        embed, threads = backend.embed, seen.setdefault(config.inline_max_tokens, [])

        def spy(encodings, embed=embed, threads=threads):
            threads.append(threading.current_thread().name)
            return embed(encodings)

        backend.embed = spy
        with serve(config, backend=backend) as url, http(url) as c:
            got = [c.post("/encode", json={"texts": t}).json()["embeddings"] for t in (short, many)]
        if not options:
            reference = got
        else:
            for mine, theirs in zip(got, reference, strict=True):
                np.testing.assert_allclose(mine, theirs, atol=1e-6)
    assert ServeConfig(model="x").inline_max_tokens == 128
    assert [t.startswith("bertkit-model") for t in seen[128]] == [False, True], seen
    assert [t.startswith("bertkit-model") for t in seen[0]] == [True, True], seen


def test_encode_uses_the_folders_saved_feature_choice(tmp_path, tiny_dir, serve, http):
    """A folder saved by FeatureExtractor (first-last-average pooling, L2) serves what `bertkit encode` computes."""
    from bertkit.inference.features import FeatureExtractor

    extractor = FeatureExtractor.from_pretrained(tiny_dir, pooling="first_last_avg", normalize=True)
    extractor.save_pretrained(tmp_path / "features")
    want = FeatureExtractor.from_pretrained(tmp_path / "features").encode(SENTENCES)
    with serve(ServeConfig(model=str(tmp_path / "features"))) as url, http(url) as c:
        info = c.get("/info").json()
        got = np.array(c.post("/encode", json={"texts": SENTENCES}).json()["embeddings"])
        raw = np.array(c.post("/encode", json={"texts": SENTENCES, "normalize": False}).json()["embeddings"])
    assert info["pooling"] == "first_last_avg" and info["normalize"] is True
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), want, atol=1e-5)


@pytest.mark.parametrize("kind", ["encoder", "classification", "qa", "tagging"])
def test_every_route_for_every_model_kind(request, kind, serve, http):
    folder = request.getfixturevalue(
        {
            "encoder": "encoder_dir",
            "classification": "classifier_dir",
            "qa": "qa_dir",
            "tagging": "tagger_dir",
        }[kind]
    )
    with serve(ServeConfig(model=str(folder))) as url, http(url) as c:
        assert c.get("/health").json() == {"status": "ok"}
        info = c.get("/info").json()
        assert info["task"] == (None if kind == "encoder" else kind)
        assert (
            c.post("/tokenize", json={"texts": ["who is here?"]}).json()["tokens"][0]["tokens"][0] == "[CLS]"
        )
        assert len(c.post("/encode", json={"texts": ["who is here?"]}).json()["embeddings"][0]) == 32
        pairs = None if kind == "tagging" else ["nobody is here ."]
        predict = c.post("/predict", json={"texts": ["who is here?"], "text_pairs": pairs})
        if kind == "encoder":
            assert predict.status_code == 404
        else:
            assert predict.status_code == 200 and len(predict.json()["predictions"]) == 1
        assert c.get("/docs").status_code == 200 and "/encode" in c.get("/openapi.json").json()["paths"]
        text = c.get("/metrics").text
    assert metric(text, "bertkit_requests_total", route="/encode", status="200") == 1
