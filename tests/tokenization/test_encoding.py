"""encoding.py: Google's pair truncation, windows and padding."""

from __future__ import annotations

import pytest

from bertkit.tokenization.encoding import google_pair_lengths, pad_batch, plan_spans, window_spans


def _google_loop(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """run_classifier.py _truncate_seq_pair, verbatim in meaning."""
    while len_a + len_b > budget:
        if len_a > len_b:
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


def test_pair_lengths_equal_googles_loop():
    for a in range(25):
        for b in range(25):
            for budget in range(0, 30, 3):
                assert google_pair_lengths(a, b, budget) == _google_loop(a, b, budget), (a, b, budget)


def test_windows_cover_the_text_and_share_stride_tokens():
    assert window_spans(0, 4, 1) == [(0, 0)]
    assert window_spans(4, 4, 1) == [(0, 4)]
    for length in range(1, 30):
        spans = window_spans(length, 5, 2)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(b[0] == a[1] - 2 and a[1] - a[0] == 5 for a, b in zip(spans, spans[1:], strict=False))


def test_plan_spans():
    assert plan_spans(10, None, 6, None) == [((0, 4), (0, 0))]
    assert plan_spans(10, 10, 16, None) == [((0, 7), (0, 6))]
    assert plan_spans(3, 10, 10, 1) == [((0, 3), (0, 4)), ((0, 3), (3, 7)), ((0, 3), (6, 10))]
    with pytest.raises(ValueError, match="max_length"):
        plan_spans(1, None, 2, None)


def test_pad_batch_types_and_mask():
    batch = pad_batch([[1, 2, 3, 4, 5], [1, 2, 3]], [3, 3], pad_id=0, width=6, return_tensors="pt")
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5, 0], [1, 2, 3, 0, 0, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 1, 1, 0], [0] * 6]
    assert batch["attention_mask"].tolist() == [[1] * 5 + [0], [1, 1, 1, 0, 0, 0]]
    with pytest.raises(ValueError, match="padding to 4"):
        pad_batch([[1, 2, 3, 4, 5]], [5], 0, 4, "pt")
    with pytest.raises(ValueError, match="return_tensors"):
        pad_batch([[1]], [1], 0, 1, "np")
