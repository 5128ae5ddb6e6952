"""Tests for bertkit/inference/batching.py: chunks keep texts and pairs aligned and name what is wrong; batches
go longest first and respect the row cap and the padded-token budget (a batch costs rows x its first row)."""

from __future__ import annotations

import random

import pytest

from bertkit.inference.batching import plan_batches, text_chunks


def test_plan_batches_docstring_and_row_cap():
    assert plan_batches([3, 9, 5, 4], 2) == [[1, 2], [3, 0]]
    assert plan_batches([3, 9, 5, 4], 3) == [[1, 2, 3], [0]]
    assert plan_batches([], 4) == []


def test_token_budget_counts_padded_tokens_and_a_long_text_goes_alone():
    # longest first 10, 6, 5, 5, 2 under a budget of 12: [10] (2 x 10 > 12), [6, 5] (2 x 6 = 12; a third row
    # would make 3 x 6), [5, 2] (2 x 5)
    assert plan_batches([5, 10, 2, 6, 5], max_batch_tokens=12) == [[1], [3, 0], [4, 2]]
    assert plan_batches([40, 3], max_batch_tokens=16) == [[0], [1]]  # over the budget alone: its own batch
    assert plan_batches([4] * 10, batch_size=3, max_batch_tokens=100) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


@pytest.mark.parametrize("seed", range(5))
def test_every_index_once_and_every_batch_within_its_limits(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 64) for _ in range(300)]
    batches = plan_batches(lengths, batch_size=16, max_batch_tokens=256)
    assert sorted(i for b in batches for i in b) == list(range(300))
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert lengths[batch[0]] == width and len(batch) <= 16
        assert width * len(batch) <= 256 or len(batch) == 1
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)


def test_plan_batches_refuses_no_limit_and_bad_limits():
    with pytest.raises(ValueError, match="give batch_size, max_batch_tokens or both"):
        plan_batches([1, 2])
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        plan_batches([1, 2], 0)
    with pytest.raises(ValueError, match="max_batch_tokens must be at least 1, got -3"):
        plan_batches([1, 2], 2, -3)


def test_text_chunks_keep_pairs_aligned():
    texts, pairs = [f"t{i}" for i in range(7)], [f"p{i}" for i in range(7)]
    chunks = list(text_chunks(iter(texts), iter(pairs), 3))
    assert chunks == [(texts[0:3], pairs[0:3]), (texts[3:6], pairs[3:6]), (texts[6:], pairs[6:])]
    assert list(text_chunks(texts, None, 4)) == [(texts[:4], None), (texts[4:], None)]
    assert list(text_chunks([], None, 4)) == []


def test_text_chunks_name_a_count_mismatch_and_a_non_string():
    with pytest.raises(ValueError, match="text_pairs has 5 items but texts has more"):
        list(text_chunks(["a"] * 7, ["b"] * 5, 3))
    with pytest.raises(ValueError, match=r"text_pairs has more items than texts \(6\)"):
        list(text_chunks(["a"] * 6, ["b"] * 7, 3))
    with pytest.raises(ValueError, match=r"texts\[4\] is int, not a string"):
        list(text_chunks(["a", "b", "c", "d", 5], None, 3))
    with pytest.raises(ValueError, match=r"text_pairs\[1\] is NoneType, not a string"):
        list(text_chunks(["a", "b"], ["x", None], 3))
