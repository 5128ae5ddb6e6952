"""Features -> padded tensors (dynamic padding), and batch plans: which feature indices go in which batch.

Shapes: B batch, T longest sequence in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def pad_sequences(
    rows: Sequence[Sequence[int]], pad_value: int = 0, dtype: torch.dtype = torch.long
) -> Tensor:
    """Right-pad rows to the longest: list of B lists -> (B, T).

    Example: pad_sequences([[1, 2, 3], [4]]) -> tensor([[1, 2, 3], [4, 0, 0]])
    """
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), pad_value, dtype=dtype)
    for i, row in enumerate(rows):
        if row:
            out[i, : len(row)] = torch.as_tensor(row, dtype=dtype)
    return out


def encoder_inputs(features: Sequence[dict], pad_id: int = 0) -> dict[str, Tensor]:
    """input_ids, token_type_ids, attention_mask (B, T) from features holding input_ids / token_type_ids."""
    ids = [f["input_ids"] for f in features]
    input_ids = pad_sequences(ids, pad_id)
    lengths = torch.tensor([len(r) for r in ids])
    attention_mask = (torch.arange(input_ids.shape[1]) < lengths[:, None]).long()
    if all("token_type_ids" in f for f in features):
        token_type_ids = pad_sequences([f["token_type_ids"] for f in features], 0)
    else:
        token_type_ids = torch.zeros_like(input_ids)
    return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}


def sequential_batches(n: int, batch_size: int) -> list[list[int]]:
    """[[0..b-1], [b..2b-1], ...]."""
    return [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Inference batches of similar length (longest first), so padding is minimal; indices refer to lengths.

    Example: sorted_batches([3, 9, 1, 8], 2) -> [[1, 3], [0, 2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def shuffled_batches(
    lengths: Sequence[int], batch_size: int, seed: int, group_by_length: bool = True, megabatch: int = 50
) -> list[list[int]]:
    """Training batches for one epoch, a pure function of (lengths, batch_size, seed).

    group_by_length: shuffle, cut into mega-batches of `megabatch` batches, sort each by length and cut it into
    batches, then shuffle the batch order (transformers' LengthGroupedSampler idea). Batches hold similar
    lengths, so dynamic padding wastes little, while the data order stays random.
    """
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(lengths), generator=gen).tolist()
    if not group_by_length:
        return [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]
    batches: list[list[int]] = []
    span = batch_size * megabatch
    for start in range(0, len(perm), span):
        chunk = sorted(perm[start : start + span], key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    full = [b for b in batches if len(b) == batch_size]
    partial = [b for b in batches if len(b) < batch_size]
    order = torch.randperm(len(full), generator=gen).tolist()
    return [full[i] for i in order] + partial  # a short batch, if any, stays last
