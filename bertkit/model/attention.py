"""attend(): the one place that picks the attention kernel.

Shapes: B batch, nh heads, T length, hs head size.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def attend(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None, dropout_p: float = 0.0) -> Tensor:
    """Scaled dot-product attention over (B, nh, T, hs) inputs; key_mask (B, 1, 1, T) is True where visible.

    Without a mask PyTorch picks its fused kernels (flash / memory-efficient on CUDA, flash on CPU);
    a boolean mask hides padded keys exactly (their weight is 0, not exp(-10000)).
    """
    return F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=dropout_p)
