"""Unpad / pad as pure functions: real tokens go through the dense layers packed, with no padding rows.

Shapes: B batch, T padded length, N real tokens in the batch (N <= B*T), D any trailing dims.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Packing:
    """Where the N real tokens of a (B, T) batch sit: flat indices into B*T, and the padded shape."""

    indices: Tensor  # (N,) long, positions in the flattened (B*T) batch
    batch: int
    seqlen: int
    key_mask: Tensor  # (B, 1, 1, T) bool, True where a key may be attended

    @property
    def num_tokens(self) -> int:
        return int(self.indices.numel())


def packing_from_mask(attention_mask: Tensor) -> Packing | None:
    """Packing for a (B, T) 0/1 mask, or None when the batch has no padding at all.

    Example: mask [[1, 1, 0], [1, 1, 1]] -> indices [0, 1, 3, 4, 5].
    """
    mask = attention_mask.bool()
    if bool(mask.all()):
        return None
    batch, seqlen = mask.shape
    indices = torch.nonzero(mask.reshape(-1), as_tuple=False).squeeze(1)
    return Packing(indices=indices, batch=batch, seqlen=seqlen, key_mask=mask[:, None, None, :])


def unpad(x: Tensor, packing: Packing) -> Tensor:
    """(B, T, D...) -> (N, D...)."""
    return x.reshape(packing.batch * packing.seqlen, *x.shape[2:]).index_select(0, packing.indices)


def pad(x: Tensor, packing: Packing) -> Tensor:
    """(N, D...) -> (B, T, D...), zeros at padded positions."""
    out = x.new_zeros(packing.batch * packing.seqlen, *x.shape[1:])
    out.index_copy_(0, packing.indices, x)
    return out.reshape(packing.batch, packing.seqlen, *x.shape[1:])
