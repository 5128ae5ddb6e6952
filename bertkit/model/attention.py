"""attend(): the one place that picks the attention kernel.

Shapes: B batch, T padded length, N real tokens, H hidden, nh heads, hs head size (H = nh * hs).

The kernels, by batch layout (bertkit.model.padding) and device; choose_kernel is the whole rule:
- "sdpa": F.scaled_dot_product_attention on (B, nh, T, hs); with a boolean key mask in the padded layout.
- "per-sequence" (CPU, packed, no autograd): SDPA on each sequence's contiguous rows of the packed qkv,
  unmasked; neighbours of equal length go in one batched call, and at inference the packing orders the
  sequences by length (padding.packing_from_mask), so a batch in any order is one call per distinct length
  (SST-2 dev in file order, batch 32: ~5 % faster than in batch order, same outputs). No (B, T) copy is
  made and no padded key is scored: at inference it beats re-padding (MiniLM, SST-2 dev, batch 32, 2-core
  Xeon: 197 vs 177 sentences/s). It is exact in gradients too, but its backward is hundreds of small ops:
  training with it ran 63 examples/s, with "repad" 93 (bench/bench_train.py, same machine), so CPU training
  re-pads.
- "flash-varlen" (CUDA, fp16/bf16, flash-attn installed): flash_attn_varlen_qkvpacked_func on (N, 3, nh, hs).
- "jagged" (CUDA otherwise): SDPA on nested jagged tensors built from the packed rows (no padding).
- "repad" (packed: CPU training, and tracing for ONNX export): pad to (B, T), masked SDPA, unpad; one
  batched kernel forward and backward, and index ops that a trace records with dynamic shapes, where a
  Python loop over sequences would be frozen into the graph.
The two CUDA kernels are written to PyTorch's and flash-attn's documented APIs; no GPU has run them. "jagged"
runs on the CPU too, through SDPA's math backend for nested tensors, and the tests hold it exact there (outputs and
gradients, every padding pattern): its layout and offsets are checked, the fused CUDA kernels behind it are not.
"""

from __future__ import annotations

import importlib.util
import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

from bertkit.model.dropout import cheap_masks, drop_unscaled
from bertkit.model.padding import Packing, pad, per_sequence_inference, unpad

KERNELS = ("sdpa", "per-sequence", "flash-varlen", "jagged", "repad")


def _has_flash_attn() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def choose_kernel(device: torch.device, dtype: torch.dtype, packing: Packing | None) -> str:
    """The attention kernel for inputs on device/dtype laid out as packing says (one of KERNELS)."""
    if packing is None or not packing.packed:
        return "sdpa"
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return "repad"
    if device.type == "cuda":
        if dtype in (torch.float16, torch.bfloat16) and _has_flash_attn():
            return "flash-varlen"
        return "jagged"
    if device.type == "cpu":  # measured: see the module docstring
        return "per-sequence" if per_sequence_inference(device) else "repad"
    return "repad"


def attend(
    qkv: Tensor,
    num_heads: int,
    head_size: int,
    packing: Packing | None,
    dropout_p: float = 0.0,
    kernel: str | None = None,
) -> Tensor:
    """Self-attention over fused projections: qkv (B, T, 3H) or packed (N, 3H) -> context (B, T, H) or (N, H).

    qkv holds q, k and v side by side, each head-major (nh, hs). A boolean mask hides padded keys exactly
    (weight 0, not exp(-10000)). kernel overrides choose_kernel (tests compare kernels on one input).
    """
    kernel = kernel or choose_kernel(qkv.device, qkv.dtype, packing)
    hidden = num_heads * head_size  # Python ints: a trace records no shape arithmetic
    if kernel == "sdpa":
        b, t, _ = qkv.shape
        q, k, v = qkv.view(b, t, 3, num_heads, head_size).permute(2, 0, 3, 1, 4).unbind(0)
        mask = None if packing is None else packing.key_mask
        if dropout_p and cheap_masks(qkv):
            ctx = _attention_with_dropout(q, k, v, mask, dropout_p)
        else:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (B, nh, T, hs)
        return ctx.transpose(1, 2).reshape(b, t, hidden)
    assert packing is not None and packing.packed, f"kernel {kernel} needs the packed layout"
    n = qkv.shape[0]
    if kernel == "repad":
        return unpad(
            attend(pad(qkv, packing), num_heads, head_size, packing, dropout_p, kernel="sdpa"), packing
        )
    if kernel == "per-sequence":
        rows = qkv.view(n, 3, num_heads, head_size)
        out = qkv.new_empty(n, hidden)
        start = 0
        for length, count in _runs(packing.lengths):  # neighbours of one length: one batched call, no copy
            if length:
                block = rows[start : start + count * length].view(count, length, 3, num_heads, head_size)
                q, k, v = block.permute(2, 0, 3, 1, 4).unbind(0)  # (count, nh, L, hs) each
                ctx = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
                # written once into its rows (a reshape copy and a cat would write it twice)
                out[start : start + count * length].view(count, length, num_heads, head_size).copy_(
                    ctx.transpose(1, 2)
                )
            start += count * length
        return out
    if kernel == "flash-varlen":
        from flash_attn import flash_attn_varlen_qkvpacked_func

        ctx = flash_attn_varlen_qkvpacked_func(
            qkv.view(n, 3, num_heads, head_size), packing.cu_seqlens, packing.max_seqlen, dropout_p
        )  # (N, nh, hs)
        return ctx.reshape(n, hidden)
    if kernel == "jagged":
        offsets = packing.cu_seqlens.long()
        # each of q, k, v contiguous (N, nh, hs): SDPA's math backend for nested tensors refuses strided
        # components, and it is the one PyTorch falls back to where the fused kernels decline a batch (a
        # sequence without real tokens, for one)
        q, k, v = (
            torch.nested.nested_tensor_from_jagged(x.contiguous(), offsets=offsets).transpose(1, 2)
            for x in qkv.view(n, 3, num_heads, head_size).unbind(1)
        )  # (B, nh, j, hs) each
        ctx = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        return ctx.transpose(1, 2).values().reshape(n, hidden)
    raise ValueError(f"unknown attention kernel {kernel!r}; choose one of {KERNELS}")


def attend_first(
    qkv: Tensor, num_heads: int, head_size: int, packing: Packing | None, dropout_p: float = 0.0
) -> Tensor:
    """attend() for each sequence's first position only: qkv (B, T, 3H) or packed (N, 3H) -> context (B, H), in
    batch order. Every key counts as in attend(); only the queries are cut to position 0, for a head that reads
    nothing else ([CLS]): the last layer of a classifier then runs its out projection and FFN on B rows, not N.

    The scores go through the padded layout: (B, nh, 1, T) is small, and in training with CPU masks the
    probabilities get row 0 of the mask attend()'s "repad" path draws for all T queries (drop_unscaled), so the
    first position drops exactly what it drops there. A sequence without real tokens attends to its padding (a
    finite row; fully masked keys would give NaN, in its gradients too), and one whose position 0 is padding
    gets a row its caller zeroes (bertkit.model.bert.Layer).
    """
    if packing is not None and packing.packed:
        qkv = pad(qkv, packing)
    b, t, _ = qkv.shape
    q, k, v = qkv.view(b, t, 3, num_heads, head_size).permute(2, 0, 3, 1, 4).unbind(0)  # (B, nh, T, hs) each
    q = q[:, :, :1]
    mask = None
    if packing is not None:
        mask = packing.key_mask | ~packing.key_mask.any(-1, keepdim=True)
    if dropout_p and cheap_masks(qkv):
        ctx = _attention_with_dropout(q, k, v, mask, dropout_p, queries=t)
    else:
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (B, nh, 1, hs)
    return ctx.reshape(b, num_heads * head_size)


def _runs(lengths: tuple[int, ...]) -> list[tuple[int, int]]:
    """(length, how many in a row) for each run of equal neighbours: (3, 3, 5, 3) -> [(3, 2), (5, 1), (3, 1)]."""
    return [(length, len(list(group))) for length, group in itertools.groupby(lengths)]


def _attention_with_dropout(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float, queries: int | None = None
) -> Tensor:
    """softmax(q k^T / sqrt(hs)) over the unmasked keys, dropout, @ v: (B, nh, T, hs) -> (B, nh, T, hs).

    What SDPA computes with dropout_p, written out for the CPU, where SDPA's dropout takes its math path with
    torch's bernoulli_ masks: this one draws bertkit.model.dropout's cheaper mask. Every pass over the (B, nh,
    T, T) scores stays in the inputs' dtype (bf16 under autocast; torch's CPU softmax accumulates a bf16 row
    in float32), padded keys get -inf by an added (B, 1, 1, T) bias, and dropout's 1 / (1 - p) multiplies the
    context after @ v instead of the probabilities: at length 177 each of those is 2-4x faster than a float32
    softmax of bf16 scores, masked_fill and a scaled mask (torch.profiler, one thread). queries: q is only the
    first of that many queries (attend_first), and its mask row is theirs.
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)  # (B, nh, T, T)
    if mask is not None:
        bias = scores.new_zeros(mask.shape).masked_fill_(~mask, float("-inf"))  # (B, 1, 1, T)
        scores = scores.add_(bias)  # in place: bmm's backward needs its inputs, not its output
    probs, scale = drop_unscaled(torch.softmax(scores, -1), p, queries)
    return (probs @ v).mul_(scale)


def attention_probs(qkv: Tensor, num_heads: int, head_size: int, packing: Packing | None) -> Tensor:
    """The attention distributions that attend() applies: qkv (B, T, 3H) or packed (N, 3H) -> (B, nh, T, T).

    softmax(q k^T / sqrt(hs)) over the real keys; padded keys get exactly 0, rows of padded queries are 0.
    An explicit path for distillation (MiniLM-style matching) only: the kernels above never materialise it.
    """
    if packing is not None and packing.packed:
        qkv = pad(qkv, packing)
    b, t, _ = qkv.shape
    q, k, _v = qkv.view(b, t, 3, num_heads, head_size).permute(2, 0, 3, 1, 4).unbind(0)
    scores = (q @ k.transpose(-1, -2)).float() / head_size**0.5  # (B, nh, T, T)
    if packing is None:
        return torch.softmax(scores, -1)
    keys = packing.key_mask.reshape(b, 1, 1, t)
    probs = torch.softmax(scores.masked_fill(~keys, float("-inf")), -1)
    return probs * keys.transpose(-1, -2)  # zero the rows of padded queries
