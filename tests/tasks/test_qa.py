"""Extractive QA task: windows, offsets -> tokens -> exact substrings, n-best / null decoding, loss, files.

Fast tests use the real tokenizers (all-MiniLM-L6-v2's uncased English vocab, bert-base-chinese's vocab)
with hand-set logits or a tiny random model. Training tests are marked slow.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from bertkit.data.examples import Answer, QAExample
from bertkit.data.readers.squad import read_squad
from bertkit.evaluation.qa import normalize_answer
from bertkit.model.config import BertConfig
from bertkit.model.heads import BertForQuestionAnswering, SpanLogits
from bertkit.tasks.qa import IGNORE, QATask, answer_token_span, context_windows, max_context_flags
from bertkit.tokenization import Tokenizer

CHINESE_VOCAB = "bert-base-chinese-vocab.txt"


@pytest.fixture(scope="module")
def en_tok(minilm_dir):
    return Tokenizer.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def zh_tok(models_dir):
    return Tokenizer.from_vocab(models_dir / "vocab" / CHINESE_VOCAB, do_lower_case=True)


def oracle_logits(features, positions):
    """Start/end logits with 10 at the given (start, end) per feature (0 elsewhere), one batch."""
    width = max(len(f["input_ids"]) for f in features)
    start, end = torch.zeros(len(features), width), torch.zeros(len(features), width)
    for i, (s, e) in enumerate(positions):
        start[i, s] = 10.0
        end[i, e] = 10.0
    return [SpanLogits(start, end)]


def tag(features_per_example):
    flat = []
    for i, feats in enumerate(features_per_example):
        for f in feats:
            f["example_index"] = i
            flat.append(f)
    return flat


# ---- windows -----------------------------------------------------------------------------------------
def test_context_windows_step_by_doc_stride_and_cover_everything():
    assert context_windows(10, 4, 3) == [(0, 4), (3, 4), (6, 4)]
    assert context_windows(3, 4, 3) == [(0, 3)]
    assert context_windows(0, 4, 3) == [(0, 0)]
    assert context_windows(10, 4, 9) == [(0, 4), (4, 4), (8, 2)]  # step capped at the window: nothing skipped


def test_max_context_matches_googles_worked_example():
    # run_squad.py's comment: "the man went to the store and bought a gallon of milk", spans
    # A = tokens 0-4, B = 3-7, C = 6-10; "bought" (7) has 4 left / 0 right in B, 1 left / 3 right in C -> C.
    spans = [(0, 5), (3, 5), (6, 5)]
    flags = max_context_flags(spans)
    assert flags[1][7 - 3] is False and flags[2][7 - 6] is True
    assert (
        flags[0][4 - 0] is False and flags[1][4 - 3] is True
    )  # "the"(4): A right edge, B has 1 left 3 right
    covered = [
        p
        for (s, n), f in zip(spans, flags, strict=True)
        for p, ok in zip(range(s, s + n), f, strict=True)
        if ok
    ]
    assert sorted(covered) == list(range(11))  # every token is max-context in exactly one window


def test_answer_token_span_through_offsets():
    offsets = [(0, 3), (4, 10), (11, 18), (18, 19)]
    assert answer_token_span(offsets, 4, 18) == (1, 2)
    assert answer_token_span(offsets, 5, 8) == (1, 1)  # inside a token: the covering token
    assert answer_token_span(offsets, 3, 4) is None  # only the space


# ---- features ----------------------------------------------------------------------------------------
def test_training_targets_map_back_to_the_answer_in_every_window(en_tok, data_dir):
    examples = list(read_squad(data_dir / "squad" / "dev-v1.1.json"))[:300]
    task = QATask(max_query_length=24, doc_stride=32)
    per_example = task.features_batch(examples, en_tok, 96)  # short windows: most contexts need several
    assert sum(len(f) for f in per_example) > 2 * len(examples)
    found = 0
    for ex, feats in zip(examples, per_example, strict=True):
        answer = ex.answers[0]
        for f in feats:
            assert len(f["input_ids"]) <= 96 and len(f["input_ids"]) == len(f["token_type_ids"])
            first = f["context_start"]
            assert (
                f["input_ids"][0] == en_tok.cls_token_id and f["input_ids"][first - 1] == en_tok.sep_token_id
            )
            assert f["token_type_ids"][first - 1] == 0 and f["token_type_ids"][first] == 1
            s, e = f["start_positions"], f["end_positions"]
            o = f["offsets"]
            window = (o[0][0], o[-1][1])
            inside = window[0] <= answer.start and answer.start + len(answer.text) <= window[1]
            if s == 0:
                assert e == 0 and not inside
                continue
            found += 1
            text = ex.context[o[s - first][0] : o[e - first][1]]
            assert normalize_answer(answer.text) in normalize_answer(text)  # whole tokens around the answer
    assert found >= len(examples)  # every answer sits wholly in at least one window


def test_question_is_cut_to_max_query_length_and_seq_length_is_checked(en_tok):
    ex = QAExample("q", "word " * 50, "Some context here.", (Answer("context", 5),))
    (f,) = QATask(max_query_length=8).features(ex, en_tok, 64)
    assert f["context_start"] == 8 + 2
    with pytest.raises(ValueError, match="no room for the context"):
        QATask(max_query_length=64).features(ex, en_tok, 40)


def test_unanswerable_and_unlocatable_targets():
    ctx = "Paris is the capital of France."
    impossible = QAExample("a", "Capital of Spain?", ctx, (), is_impossible=True)
    lost = QAExample("b", "Capital?", ctx, (Answer("Madrid", -1),))
    unlabelled = QAExample("c", "Capital?", ctx)
    tok = None  # features need a tokenizer; use a tiny vocab built from the words
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "paris", "is", "the", "capital", "of", "france", ".",
             "spain", "?"]  # fmt: skip
    tok = Tokenizer({w: i for i, w in enumerate(words)}, do_lower_case=True)
    (f,) = QATask(metric="squad_v2").features(impossible, tok, 64)
    assert (f["start_positions"], f["end_positions"]) == (0, 0)
    (f,) = QATask().features(lost, tok, 64)
    assert (f["start_positions"], f["end_positions"]) == (IGNORE, IGNORE)  # no loss from it
    (f,) = QATask().features(unlabelled, tok, 64)
    assert "start_positions" not in f
    assert QATask().check(impossible) and QATask(metric="squad_v2").check(impossible) is None
    assert QATask().check(unlabelled, labelled=False) is None


# ---- decoding ----------------------------------------------------------------------------------------
def test_oracle_logits_decode_to_the_gold_answers(en_tok, data_dir):
    """Logits that point at the training targets give back the references: EM/F1 ~100 through windows."""
    examples = list(read_squad(data_dir / "squad" / "dev-v1.1.json"))[:300]
    task = QATask(max_query_length=24, doc_stride=32)
    feats = tag(task.features_batch(examples, en_tok, 96))
    preds = task.decode(
        oracle_logits(feats, [(f["start_positions"], f["end_positions"]) for f in feats]), feats, examples
    )
    assert [p["id"] for p in preds] == [e.qid for e in examples]
    for p, e in zip(preds, examples, strict=True):
        assert e.context[p["start"] : p["start"] + len(p["answer"])] == p["answer"]  # exact substring
    m = task.metrics(preds, examples)
    assert m["exact_match"] > 96 and m["f1"] > 96
    # the rest: references inside a token, e.g. "gold" in "golden", "8" in "18"
    for p, e in zip(preds, examples, strict=True):
        if p["answer"] != e.answers[0].text:
            assert e.answers[0].text in p["answer"] and len(p["answer"].split()) == 1


def test_chinese_answers_are_exact_substrings(zh_tok):
    ctx = "《战国无双3》（）是由光荣和ω-force开发的战国无双系列的正统第三续作。本作以三大故事为主轴。"
    ex = QAExample(
        "DEV_0_QUERY_0", "《战国无双3》是由哪两个公司合作开发的？", ctx, (Answer("光荣和ω-force", 11),)
    )
    task = QATask(metric="cmrc2018", max_query_length=16, doc_stride=8)
    feats = tag([task.features(ex, zh_tok, 40)])
    assert len(feats) > 1
    positions = [(f["start_positions"], f["end_positions"]) for f in feats]
    (pred,) = task.decode(oracle_logits(feats, positions), feats, [ex])
    assert pred["answer"] == "光荣和ω-force" and ctx[pred["start"] :].startswith("光荣和ω-force")
    assert task.metrics([pred], [ex]) == pytest.approx(
        {"exact_match": 100.0, "f1": 100.0, "average": 100.0, "total": 1, "skip": 0}
    )


def _one_window(tok, task, ctx="alpha beta gamma delta epsilon", question="which?"):
    ex = QAExample("x", question, ctx, (Answer("gamma", 11),))
    feats = tag([task.features(ex, tok, 64)])
    return ex, feats


def test_nbest_ordering_dedupe_max_answer_length_and_probabilities(en_tok):
    task = QATask(n_best_size=3, max_answer_length=2)
    ex, feats = _one_window(en_tok, task)
    c = feats[0]["context_start"]  # tokens: alpha beta gamma delta epsilon -> c .. c+4
    start, end = (
        torch.full((1, len(feats[0]["input_ids"])), -9.0),
        torch.full((1, len(feats[0]["input_ids"])), -9.0),
    )
    start[0, c + 0], end[0, c + 4] = 9.0, 9.0  # alpha..epsilon = 18, alpha..gamma = 14: too long (> 2 tokens)
    start[0, c + 2], end[0, c + 2] = 5.0, 5.0  # gamma = 10
    start[0, c + 1], end[0, c + 3] = 4.0, 4.5  # gamma..delta = 9.5, beta..gamma = 9, beta..delta too long
    (pred,) = task.decode([SpanLogits(start, end)], feats, [ex])
    texts = [e["text"] for e in pred["nbest"]]
    assert texts == ["gamma", "gamma delta", "beta gamma"] and pred["answer"] == "gamma"
    assert ex.context[pred["start"] :].startswith("gamma")
    assert sum(e["probability"] for e in pred["nbest"]) == pytest.approx(1.0)
    scores = [e["score"] for e in pred["nbest"]]
    assert scores == pytest.approx([10.0, 9.5, 9.0])
    assert pred["nbest"][0]["probability"] == pytest.approx(1 / sum(math.exp(s - scores[0]) for s in scores))


def test_v2_null_score_and_threshold(en_tok):
    for threshold, expected in ((0.0, ""), (5.0, "gamma")):
        task = QATask(metric="squad_v2", null_score_diff_threshold=threshold)
        ex, feats = _one_window(en_tok, task)
        c = feats[0]["context_start"]
        start, end = torch.zeros(1, len(feats[0]["input_ids"])), torch.zeros(1, len(feats[0]["input_ids"]))
        start[0, 0], end[0, 0] = 6.0, 6.0  # null score 12
        start[0, c + 2], end[0, c + 2] = 4.0, 4.0  # best span 8: diff 4
        (pred,) = task.decode([SpanLogits(start, end)], feats, [ex])
        assert pred["null_score_diff"] == pytest.approx(4.0) and pred["best_span"] == "gamma"
        assert pred["answer"] == expected
        assert "" in [e["text"] for e in pred["nbest"]]


def test_v2_metrics_search_the_best_threshold_over_the_model():
    task = QATask(metric="squad_v2")
    ctx = "Paris is the capital of France."
    examples = [
        QAExample("a", "q", ctx, (Answer("Paris", 0),)),
        QAExample("b", "q", ctx, (), is_impossible=True),
    ]
    preds = [
        {"id": "a", "answer": "", "best_span": "Paris", "null_score_diff": 1.0},  # abstained wrongly at 0.0
        {"id": "b", "answer": "", "best_span": "France", "null_score_diff": 3.0},
    ]
    m = task.metrics(preds, examples)
    assert m["exact_match"] == 50.0 and m["HasAns_exact"] == 0.0 and m["NoAns_exact"] == 100.0
    assert m["best_exact"] == 100.0 and m["best_exact_thresh"] == 1.0  # answer when diff <= 1


def test_save_predictions_writes_the_official_files(tmp_path, en_tok):
    task = QATask(metric="squad_v2")
    ex, feats = _one_window(en_tok, task)
    preds = task.decode(
        oracle_logits(feats, [(f["start_positions"], f["end_positions"]) for f in feats]), feats, [ex]
    )
    paths = task.save_predictions(preds, tmp_path)
    assert sorted(p.name for p in paths) == ["nbest_predictions.json", "null_odds.json", "predictions.json"]
    assert json.loads((tmp_path / "predictions.json").read_text()) == {"x": "gamma"}
    nbest = json.loads((tmp_path / "nbest_predictions.json").read_text())["x"]
    assert {"text", "probability", "start_logit", "end_logit"} <= set(nbest[0])
    assert isinstance(json.loads((tmp_path / "null_odds.json").read_text())["x"], float)


# ---- model, loss ---------------------------------------------------------------------------------------
def test_forward_masks_padding_and_loss_is_the_mean_of_start_and_end_cross_entropy(en_tok):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=en_tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64)  # fmt: skip
    model = BertForQuestionAnswering(config).eval()
    task = QATask()
    examples = [
        QAExample("a", "who?", "Ann met Bob in Rome last year.", (Answer("Bob", 8),)),
        QAExample("b", "where did they meet?", "Rome.", (Answer("Rome", 0),)),
    ]
    feats = tag(task.features_batch(examples, en_tok, 64))
    batch = task.collate(feats)
    out = task.forward(model, batch)
    assert out.start_logits.shape == batch["input_ids"].shape
    pad = batch["attention_mask"] == 0
    assert pad.any() and bool((out.start_logits[pad] == torch.finfo(torch.float32).min).all())
    raw = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    lengths = batch["attention_mask"].sum(1).tolist()

    def row_loss(i):  # cross-entropy over the real tokens of one row, start and end averaged
        n = lengths[i]
        s = F.cross_entropy(raw.start_logits[i, :n][None], batch["start_positions"][i : i + 1])
        e = F.cross_entropy(raw.end_logits[i, :n][None], batch["end_positions"][i : i + 1])
        return ((s + e) / 2).item()

    assert task.loss(out, batch).item() == pytest.approx((row_loss(0) + row_loss(1)) / 2, rel=1e-5)
    batch["start_positions"][1] = batch["end_positions"][1] = IGNORE
    assert task.loss(out, batch).item() == pytest.approx(row_loss(0), rel=1e-5)


def test_to_json_round_trip_and_bad_options():
    task = QATask(metric="cmrc2018", doc_stride=64, null_score_diff_threshold=-1.5)
    assert QATask(**task.to_json()) == task
    with pytest.raises(ValueError, match="metric must be one of"):
        QATask(metric="squad3")
    with pytest.raises(ValueError, match="doc_stride must be >= 1"):
        QATask(doc_stride=0)


def test_example_from_dict():
    task = QATask()
    ex = task.example_from_dict(
        {"question": "Where?", "context": "In Paris.", "answers": [{"text": "Paris", "answer_start": 0}]},
        "req[0]",
    )
    assert ex.answers == (Answer("Paris", 3),) and ex.qid == "req[0]"  # re-anchored to where the text is
    with pytest.raises(ValueError, match="req: field 'context' must be a string"):
        task.example_from_dict({"question": "Where?"}, "req")
