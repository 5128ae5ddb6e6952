"""bertkit.serving.pipelines: the pure parts (window merging, scoring functions, offsets, QA conversion)."""

from __future__ import annotations

import numpy as np
import pytest

from bertkit.serving import pipelines


def test_piece_windows_cover_every_piece_with_the_overlap():
    assert pipelines.piece_windows(0, 4, 1) == [(0, 0)]
    assert pipelines.piece_windows(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    assert pipelines.piece_windows(3, 4, 9) == [(0, 3)]  # an overlap >= the window is capped


def test_merge_windows_takes_each_piece_from_its_best_context_window():
    spans = [(0, 4), (2, 6)]  # pieces 2 and 3 are in both windows
    # window rows: [CLS] + pieces + [SEP]; mark each row with (window, piece)
    scores = [
        np.array([[w * 10 + k] for k in [-1, *range(s, e), -1]], dtype=np.float32)
        for w, (s, e) in enumerate(spans)
    ]
    merged = pipelines.merge_windows(6, spans, scores)[:, 0]
    # piece 2: context min(2, 1) = 1 in window 0, min(0, 3) = 0 in window 1 -> window 0;
    # piece 3: min(3, 0) = 0 in window 0, min(1, 2) = 1 in window 1 -> window 1
    assert merged.tolist() == [0, 1, 2, 13, 14, 15]


def test_scoring_functions_and_defaults():
    logits = np.array([2.0, 0.0, -1.0])
    soft = pipelines.classify(logits, ["a", "b", "c"], "softmax")
    assert [x["label"] for x in soft] == ["a", "b", "c"] and sum(x["score"] for x in soft) == pytest.approx(1)
    assert pipelines.classify(logits, ["a", "b", "c"], "none", top_k=1) == [{"label": "a", "score": 2.0}]
    assert pipelines.classify(logits, ["a", "b", "c"], "sigmoid")[0]["score"] == pytest.approx(
        1 / (1 + np.exp(-2))
    )
    assert pipelines.default_function("regression", 1) == "none"
    assert pipelines.default_function("single_label_classification", 1) == "sigmoid"
    assert pipelines.default_function("multi_label_classification", 3) == "sigmoid"
    assert pipelines.default_function("single_label_classification", 3) == "softmax"
    with pytest.raises(ValueError, match="function_to_apply"):
        pipelines.classify(logits, ["a", "b", "c"], "relu")


def test_utf8_offsets_and_qa_answers():
    assert pipelines.utf8_offsets("é😀a") == [0, 2, 6, 7]
    pred = {"answer": "Berlin", "start": 34, "nbest": [{"text": "Berlin", "start": 34, "probability": 0.7},
                                                        {"text": "in Berlin", "start": 31, "probability": 0.2}]}  # fmt: skip
    assert pipelines.qa_answers(pred) == {"answer": "Berlin", "score": 0.7, "start": 34, "end": 40}
    assert [a["end"] for a in pipelines.qa_answers(pred, top_k=2)] == [40, 40]
    assert pipelines.qa_answers({"nbest": []}) == {"answer": "", "score": 0.0, "start": 0, "end": 0}
