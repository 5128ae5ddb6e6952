"""Dynamic padding and batch plans (pure functions)."""

from __future__ import annotations

import torch

from bertkit.data.collate import (
    encoder_inputs,
    pad_sequences,
    sequential_batches,
    shuffled_batches,
    sorted_batches,
)


def test_pad_and_masks() -> None:
    assert pad_sequences([[1, 2, 3], [4]]).tolist() == [[1, 2, 3], [4, 0, 0]]
    batch = encoder_inputs(
        [
            {"input_ids": [5, 6, 7], "token_type_ids": [0, 0, 1]},
            {"input_ids": [5, 7], "token_type_ids": [0, 0]},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 7, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1], [0, 0, 0]]
    assert batch["input_ids"].dtype == torch.long


def test_sorted_and_sequential() -> None:
    assert sorted_batches([3, 9, 1, 8], 2) == [[1, 3], [0, 2]]
    assert sequential_batches(5, 2) == [[0, 1], [2, 3], [4]]


def test_shuffled_batches_cover_everything_once_and_are_deterministic() -> None:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 100, (1003,), generator=g).tolist()
    for group in (True, False):
        a = shuffled_batches(lengths, 16, seed=5, group_by_length=group)
        assert a == shuffled_batches(lengths, 16, seed=5, group_by_length=group)
        assert a != shuffled_batches(lengths, 16, seed=6, group_by_length=group)
        flat = [i for b in a for i in b]
        assert sorted(flat) == list(range(1003))
        assert all(len(b) == 16 for b in a[:-1]) and len(a[-1]) == 1003 % 16


def test_length_grouping_reduces_padding() -> None:
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(2, 120, (3200,), generator=g).tolist()

    def padded(batches: list[list[int]]) -> int:
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    grouped = padded(shuffled_batches(lengths, 32, 0, True))
    random = padded(shuffled_batches(lengths, 32, 0, False))
    assert grouped < 0.7 * random
    assert grouped >= sum(lengths)
