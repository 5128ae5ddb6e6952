"""Unpad / pad as pure functions: real tokens go through the dense layers packed, with no padding rows.

Shapes: B batch, T padded length, N real tokens in the batch (N <= B*T), D any trailing dims.

A batch travels in one of two layouts, chosen once per forward by packing_from_mask:
- packed (N, D...): the real tokens only, each sequence's tokens one contiguous run of rows (cu_seqlens),
  whatever the padding pattern (holes included). The eager default. The sequences follow each other in batch
  order, or, at CPU inference, ordered by length (Packing.order): the per-sequence attention kernel then
  makes one batched call per distinct length instead of one per run of equal neighbours, and every other
  layer works row by row, so the order costs nothing but one gather in and one scatter out, both of which
  unpad and pad already do.
- padded (B, T, D...) with a key mask: under torch.compile, whose graphs must not branch on data or take
  data-dependent shapes (nonzero); padded rows are computed and zeroed at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Packing:
    """Where the real tokens of a (B, T) batch sit: the padded shape, the key mask, and (packed) their rows."""

    batch: int
    seqlen: int
    key_mask: Tensor  # (B, 1, 1, T) bool, True where a key may be attended
    indices: Tensor | None  # (N,) long positions in the flattened (B*T) batch; None in the padded layout
    order: Tensor | None = None  # (B,) long: batch rows in the order of their packed runs; None: 0..B-1

    @property
    def packed(self) -> bool:
        return self.indices is not None

    @property
    def num_tokens(self) -> int:
        return int(self.indices.numel()) if self.indices is not None else self.batch * self.seqlen

    @cached_property
    def seqlens(self) -> Tensor:
        """(B,) int32 real tokens per sequence, in the order of the packed runs (Packing.order)."""
        counts = self.key_mask.reshape(self.batch, self.seqlen).sum(1, dtype=torch.int32)
        return counts if self.order is None else counts[self.order]

    @cached_property
    def cu_seqlens(self) -> Tensor:
        """(B+1,) int32 offsets of each sequence's rows in the packed (N, D...) layout."""
        return F.pad(torch.cumsum(self.seqlens, 0, dtype=torch.int32), (1, 0))

    @cached_property
    def lengths(self) -> tuple[int, ...]:
        """Host copy of seqlens (one device sync, made once per forward and only by kernels that loop)."""
        return tuple(self.seqlens.tolist())

    @cached_property
    def max_seqlen(self) -> int:
        return max(self.lengths, default=0)


def per_sequence_inference(device: torch.device) -> bool:
    """CPU inference outside a trace or an ONNX export: where attention runs sequence by sequence
    (model.attention.choose_kernel's "per-sequence") and packing_from_mask orders the sequences by length for
    it. The one rule both read."""
    if device.type != "cpu" or torch.is_grad_enabled():
        return False
    return not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


def packing_from_mask(
    attention_mask: Tensor, packed: bool | None = None, by_length: bool | None = None
) -> Packing | None:
    """Packing for a (B, T) 0/1 mask, or None when the batch has no padding at all.

    packed=None picks the layout: padded under torch.compile (no data-dependent branch or shape, so no
    graph break), packed otherwise. Example: mask [[1, 1, 0], [1, 1, 1]] -> indices [0, 1, 3, 4, 5].
    by_length: order the packed sequences by length (stable, shortest first). None: where attention runs
    sequence by sequence (per_sequence_inference).
    Example: mask [[1, 1, 1], [1, 0, 0], [1, 1, 0]], by_length -> order [1, 2, 0], indices [3, 6, 7, 0, 1, 2].
    """
    mask = attention_mask.bool()
    batch, seqlen = mask.shape
    if packed is None:
        packed = not torch.compiler.is_compiling()
    if not packed:
        return Packing(batch=batch, seqlen=seqlen, key_mask=mask[:, None, None, :], indices=None)
    if bool(mask.all()):
        return None
    if by_length is None:
        by_length = per_sequence_inference(mask.device)
    order = None
    if by_length:
        order = torch.argsort(mask.sum(1), stable=True)
        rows = torch.nonzero(mask[order].reshape(-1), as_tuple=False).squeeze(1)
        indices = order[rows // seqlen] * seqlen + rows % seqlen
    else:
        indices = torch.nonzero(mask.reshape(-1), as_tuple=False).squeeze(1)
    return Packing(batch=batch, seqlen=seqlen, key_mask=mask[:, None, None, :], indices=indices, order=order)


def unpad(x: Tensor, packing: Packing) -> Tensor:
    """(B, T, D...) -> (N, D...); the padded layout keeps (B, T, D...)."""
    if packing.indices is None:
        return x
    return x.reshape(-1, *x.shape[2:]).index_select(0, packing.indices)


def pad(x: Tensor, packing: Packing) -> Tensor:
    """(N, D...) -> (B, T, D...), zeros at padded positions (the padded layout zeroes them in place of a copy)."""
    if packing.indices is None:
        keep = packing.key_mask.reshape(packing.batch, packing.seqlen, *([1] * (x.dim() - 2)))
        return x.masked_fill(~keep, 0)
    out = x.new_zeros(packing.batch * packing.seqlen, *x.shape[1:])
    out.index_copy_(0, packing.indices, x)
    return out.reshape(packing.batch, packing.seqlen, *x.shape[1:])


def first_rows(x: Tensor, packing: Packing | None) -> tuple[Tensor, Tensor | None]:
    """Where each sequence's position 0 sits among the rows of x, (B, T, D...) or packed (N, D...) ->
    ((B,) long indices into x's rows (x flattened to (B*T, D...) in the padded layouts), (B,) bool: position 0 is
    a real token; None when every position is). A padded position 0 gets some row: its caller zeroes it.

    Example: packed rows of mask [[1, 1, 0], [0, 1, 1]] -> ([0, 0], [True, False]): the second sequence's
    position 0 is padding (its real tokens are rows 2 and 3).
    """
    if packing is None:
        b, t = x.shape[:2]
        return torch.arange(b, device=x.device) * t, None
    real = packing.key_mask[:, 0, 0, 0]
    if packing.indices is None:
        return torch.arange(packing.batch, device=x.device) * packing.seqlen, real
    return pad(torch.arange(x.shape[0], device=x.device), packing)[:, 0], real
