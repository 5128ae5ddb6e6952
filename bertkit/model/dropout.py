"""Dropout with cheaper random masks on the CPU.

On the CPU, torch draws a dropout mask with one 32-bit Mersenne Twister output per element (bernoulli_), about
17 ns each on this project's Xeon. For training at length 256 that was the largest single cost: a quarter of a
MiniLM SQuAD step went to the attention-probability masks alone (torch.profiler, one thread). Here a CPU mask
takes 16 random bits per element from NumPy's SFC64 generator, seeded by one draw from torch's default
generator, so torch.manual_seed and a checkpoint's saved RNG state fix every mask as before.
bench/bench_dropout.py (MiniLM QA training, SQuAD windows of 256, bf16, 2 threads) measured a (16, 12, 177, 177)
mask in 11.4 ms instead of bernoulli_'s 91.7 and the training step, with attention's written-out path
(bertkit.model.attention), 1.73x faster (1061 vs 1840 ms); at one thread and length 64, 1.23x.

The keep probability is quantised to 1/65536: p = 0.1 drops with probability 6554/65536 = 0.1000061. The kept
values are scaled by 1 / (1 - that probability), so the output's expectation is the input exactly (inverted
dropout). On other devices (CUDA's fused Philox kernel is fast) and inside torch.compile, F.dropout runs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LEVELS = 1 << 16  # the mask's resolution: 16 random bits per element
# False: torch's own dropout everywhere (bench/bench_dropout.py times both; a user may want torch's masks)
CPU_MASKS = True


def cheap_masks(x: Tensor) -> bool:
    """Whether dropout on x draws this module's masks: on the CPU, outside torch.compile, unless CPU_MASKS
    is off."""
    return CPU_MASKS and x.device.type == "cpu" and not torch.compiler.is_compiling()


def drop_threshold(p: float) -> int:
    """Uniform 16-bit draws below this are dropped: round(p * 65536), at least 1 for any p > 0."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    return max(1, round(p * _LEVELS)) if p > 0 else 0


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> tuple[Tensor, float]:
    """A CPU bool tensor of `shape`, False where dropped (probability drop_threshold(p) / 65536), and the
    scale 1 / (1 - that probability) for the kept values.

    The 16-bit draws are SFC64's raw 64-bit outputs cut in four: 3x faster than Generator.integers, which
    draws and masks each 16-bit value on its own."""
    threshold = drop_threshold(p)
    seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))  # torch's generator fixes the mask
    n = int(np.prod(shape, dtype=np.int64))
    bits = np.random.SFC64(seed).random_raw(-(-n // 4)).view(np.uint16)[:n]
    return torch.from_numpy(bits >= threshold).view(shape), _LEVELS / (_LEVELS - threshold)


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """F.dropout(x, p, training), with the CPU mask of this module's docstring."""
    if not training or p == 0.0:
        return x
    if p >= 1.0 or not cheap_masks(x):
        return F.dropout(x, p, True)
    keep, scale = keep_mask(x.shape, p)
    return _Masked.apply(x, keep, scale)


def dropout_rows(x: Tensor, p: float, training: bool, rows: Tensor, total: int) -> Tensor:
    """dropout(y, p, training)[rows] computed on x = y[rows] alone, y being (total, D...): on the CPU, x gets
    those rows of the mask drawn for all of y (the same draw from torch's generator, the same kept elements),
    so a layer that computes only some rows (bertkit.model.bert, first_token_only) drops exactly what the whole
    layer would. Elsewhere F.dropout on x.

    Example: dropout_rows(y[[0, 5]], 0.1, True, torch.tensor([0, 5]), len(y)) equals dropout(y, 0.1)[[0, 5]]
    under the same seed."""
    if not training or p == 0.0:
        return x
    if p >= 1.0 or not cheap_masks(x):
        return F.dropout(x, p, True)
    keep, scale = keep_mask((total, *x.shape[1:]), p)
    return _Masked.apply(x, keep[rows], scale)


def drop_unscaled(x: Tensor, p: float, queries: int | None = None) -> tuple[Tensor, float]:
    """(x with the dropped elements zeroed, the scale its kept values still need), for a caller that applies the
    scale to a smaller tensor downstream: attention multiplies its context (T x hs per head) instead of the
    T x T probabilities. CPU masks only (cheap_masks).

    queries: x (B, nh, 1, T) holds only the first query's row of (B, nh, queries, T) probabilities; it gets that
    row of the mask drawn for all of them (as dropout_rows)."""
    if queries is None:
        keep, scale = keep_mask(x.shape, p)
    else:
        keep, scale = keep_mask((x.shape[0], x.shape[1], queries, x.shape[3]), p)
        keep = keep[:, :, :1]
    return _Masked.apply(x, keep, None), scale


class _Masked(torch.autograd.Function):
    """x * keep (* scale), forward and backward alike. The bool mask multiplies as 0/1 in x's dtype: a plain
    vectorised product, 3x faster here than torch.where(keep, x, 0) (and than aten's native_dropout_backward,
    which casts the mask to float first); autograd keeps the 1-byte mask, not a copy in x's dtype."""

    @staticmethod
    def forward(ctx, x: Tensor, keep: Tensor, scale: float | None) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return _apply(x, keep, scale)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (keep,) = ctx.saved_tensors
        return _apply(grad, keep, ctx.scale), None, None


def _apply(x: Tensor, keep: Tensor, scale: float | None) -> Tensor:
    out = x * keep.view(torch.uint8).to(x.dtype)  # bool -> uint8 -> x's dtype: the fast conversion path
    return out if scale is None else out.mul_(scale)


class Dropout(nn.Module):
    """nn.Dropout with the CPU mask of this module's docstring (no parameters: state dicts are unchanged)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
