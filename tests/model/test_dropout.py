"""bertkit.model.dropout: the CPU masks' law (binomial bounds), their seeding by torch's generator, gradients
through the same mask, and the CPU training attention that uses them against SDPA."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import bertkit.model.dropout as dropout_module
from bertkit.model.attention import attend
from bertkit.model.dropout import Dropout, drop_threshold, dropout, keep_mask
from bertkit.model.padding import packing_from_mask


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_drop_rate_is_within_binomial_bounds_and_kept_values_are_scaled(p):
    torch.manual_seed(0)
    n = 2_000_000
    x = torch.rand(n) + 0.5  # no zeros of its own
    y = dropout(x, p)
    q = drop_threshold(p) / 65536
    assert abs(q - p) <= 0.5 / 65536
    dropped = int((y == 0).sum())
    assert abs(dropped - n * q) < 5 * math.sqrt(n * q * (1 - q))  # 5 sigma
    kept = y != 0
    assert torch.equal(y[kept], x[kept] * (1 / (1 - q)))  # inverted dropout: E[y] = x exactly
    assert torch.equal(dropout(x, p, training=False), x) and torch.equal(dropout(x, 0.0), x)


def test_each_16_bit_lane_of_a_64_bit_draw_drops_at_the_rate_and_odd_sizes_work():
    """A mask cuts each 64-bit SFC64 output into four 16-bit draws: every lane must drop at the rate (a lane
    with a biased bit would show here), and a size that is not a multiple of four must work."""
    torch.manual_seed(8)
    n, q = 4 * 250_000, drop_threshold(0.1) / 65536
    keep = keep_mask((n,), 0.1)[0].view(-1, 4)
    for lane in range(4):
        dropped = int((~keep[:, lane]).sum())
        assert abs(dropped - n / 4 * q) < 5 * math.sqrt(n / 4 * q * (1 - q))
    odd = keep_mask((3, 5, 7), 0.5)[0]
    assert odd.shape == (3, 5, 7) and odd.dtype == torch.bool and 0 < int(odd.sum()) < 105


def test_bf16_dropout_rounds_once_like_a_float_product():
    """In bf16 the kept values are x * scale computed in float32 and rounded once (as torch's own dropout
    does), the dropped ones exactly 0."""
    torch.manual_seed(9)
    x = (torch.rand(1000, 64) + 0.5).to(torch.bfloat16)
    y = dropout(x, 0.1)
    scale = 1 / (1 - drop_threshold(0.1) / 65536)
    kept = y != 0
    assert y.dtype == torch.bfloat16 and 0.85 < kept.float().mean() < 0.95
    assert torch.equal(y[kept], (x[kept].float() * scale).to(torch.bfloat16))


def test_masks_follow_torch_manual_seed():
    torch.manual_seed(1)
    a = keep_mask((64, 64), 0.1)[0]
    b = keep_mask((64, 64), 0.1)[0]
    torch.manual_seed(1)
    assert torch.equal(keep_mask((64, 64), 0.1)[0], a) and not torch.equal(a, b)
    state = torch.get_rng_state()  # what a resumable checkpoint saves
    c = keep_mask((64, 64), 0.1)[0]
    torch.set_rng_state(state)
    assert torch.equal(keep_mask((64, 64), 0.1)[0], c)


def test_gradient_goes_through_the_forward_mask():
    torch.manual_seed(2)
    x = torch.randn(300, 40, requires_grad=True)
    g = torch.randn(300, 40)
    y = dropout(x, 0.25)
    y.backward(g)
    scale = 1 / (1 - drop_threshold(0.25) / 65536)
    kept = y.detach() != 0
    assert torch.equal(x.grad, torch.where(kept, g * scale, 0))


def test_dropout_module_is_nn_dropout_without_the_rng():
    assert Dropout(0.1).extra_repr() == "p=0.1" and not list(Dropout(0.1).parameters())
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\], got 1.5"):
        Dropout(1.5)
    x = torch.ones(5, 7)
    assert torch.equal(Dropout(1.0)(x), torch.zeros(5, 7))  # p = 1: torch's own (all dropped)
    module = Dropout(0.2).eval()
    assert torch.equal(module(x), x)


def _qkv_and_packing(dtype=torch.float32):
    torch.manual_seed(3)
    lengths = torch.tensor([9, 4, 7])
    mask = torch.arange(9)[None, :] < lengths[:, None]
    qkv = torch.randn(3, 9, 3 * 4 * 8, dtype=dtype, requires_grad=True)
    return qkv, packing_from_mask(mask, packed=False)


def test_cpu_training_attention_equals_sdpa_when_the_mask_keeps_everything(monkeypatch):
    """With dropout drawing an all-keep mask, the CPU path (scores, masked softmax, @ v) equals SDPA without
    dropout, values and gradients, padded keys masked."""
    qkv, packing = _qkv_and_packing()
    reference = attend(qkv, 4, 8, packing, 0.0)
    g = torch.randn_like(reference)
    (ref_grad,) = torch.autograd.grad(reference, qkv, g)
    monkeypatch.setattr(dropout_module, "keep_mask", lambda shape, p: (torch.ones(shape, dtype=torch.bool), 1.0))
    out = attend(qkv, 4, 8, packing, 0.1)
    (grad,) = torch.autograd.grad(out, qkv, g)
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6)


def test_cpu_training_attention_drops_attention_probabilities():
    """The mask applies to the attention probabilities, as SDPA's dropout_p does: with the same mask, the
    written-out formula gives the same context."""
    qkv, packing = _qkv_and_packing()
    torch.manual_seed(4)
    out = attend(qkv, 4, 8, packing, 0.3)
    torch.manual_seed(4)
    keep, scale = keep_mask((3, 4, 9, 9), 0.3)
    q, k, v = qkv.view(3, 9, 3, 4, 8).permute(2, 0, 3, 1, 4).unbind(0)
    scores = (q @ k.transpose(-1, -2) / math.sqrt(8)).masked_fill(~packing.key_mask, float("-inf"))
    expected = (torch.softmax(scores, -1) * keep * scale) @ v
    torch.testing.assert_close(out, expected.transpose(1, 2).reshape(3, 9, 32), rtol=1e-5, atol=1e-6)


def test_cpu_training_attention_in_bf16_is_the_float32_formula_within_bf16_rounding():
    """Under bf16 autocast the scores, softmax and mask stay in bf16 (the softmax accumulates in float32), and
    the 1 / (1 - p) scale multiplies the context: the same mask through the float32 formula agrees within
    bf16's rounding (8 bits)."""
    qkv, packing = _qkv_and_packing()
    torch.manual_seed(10)
    with torch.autocast("cpu", torch.bfloat16):
        out = attend(qkv.to(torch.bfloat16), 4, 8, packing, 0.3)
    torch.manual_seed(10)
    keep, scale = keep_mask((3, 4, 9, 9), 0.3)
    q, k, v = qkv.detach().to(torch.bfloat16).float().view(3, 9, 3, 4, 8).permute(2, 0, 3, 1, 4).unbind(0)
    scores = (q @ k.transpose(-1, -2) / math.sqrt(8)).masked_fill(~packing.key_mask, float("-inf"))
    expected = ((torch.softmax(scores, -1) * keep * scale) @ v).transpose(1, 2).reshape(3, 9, 32)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, rtol=2e-2, atol=2e-2)


def test_cpu_training_attention_is_unbiased_like_sdpas():
    """Averaged over many masks, the context is the dropout-free one (both ours and SDPA's own dropout)."""
    qkv, packing = _qkv_and_packing()
    qkv = qkv.detach()
    clean = attend(qkv, 4, 8, packing, 0.0)
    torch.manual_seed(5)
    ours = torch.stack([attend(qkv, 4, 8, packing, 0.2) for _ in range(3000)]).mean(0)
    b, t, _ = qkv.shape
    q, k, v = qkv.view(b, t, 3, 4, 8).permute(2, 0, 3, 1, 4).unbind(0)
    sdpa = torch.stack(
        [F.scaled_dot_product_attention(q, k, v, attn_mask=packing.key_mask, dropout_p=0.2) for _ in range(3000)]
    ).mean(0)
    sdpa = sdpa.transpose(1, 2).reshape(b, t, -1)
    err_ours, err_sdpa = (ours - clean).abs().mean(), (sdpa - clean).abs().mean()
    assert err_ours < 0.02 and err_ours < 1.5 * err_sdpa  # the same Monte Carlo error as torch's own


def test_cpu_masks_off_gives_torchs_own_dropout(monkeypatch):

    monkeypatch.setattr(dropout_module, "CPU_MASKS", False)
    x = torch.randn(50, 60)
    torch.manual_seed(6)
    ours = dropout(x, 0.1)
    torch.manual_seed(6)
    assert torch.equal(ours, F.dropout(x, 0.1))
    qkv, packing = _qkv_and_packing()
    torch.manual_seed(7)
    out = attend(qkv, 4, 8, packing, 0.2)
    torch.manual_seed(7)
    q, k, v = qkv.view(3, 9, 3, 4, 8).permute(2, 0, 3, 1, 4).unbind(0)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=packing.key_mask, dropout_p=0.2)
    assert torch.equal(out, expected.transpose(1, 2).reshape(3, 9, 32))
