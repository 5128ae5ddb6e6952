"""attend() and its kernel choice: every kernel is exact against per-sequence SDPA, outputs and gradients,
for every padding pattern; the encoder gives the same results through every layout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bertkit.model import attention
from bertkit.model.attention import attend, choose_kernel
from bertkit.model.bert import BertModel
from bertkit.model.config import BertConfig
from bertkit.model.padding import packing_from_mask, pad, unpad

TINY = BertConfig(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)
HEADS, HIDDEN = 4, 32
# Padding patterns: right padding, a row without padding, holes inside a row, a row of one token, a row
# with no real token at all, and left padding.
MASKS = {
    "right": [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]],
    "holes": [[1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 1, 0], [1, 1, 1, 1, 1, 0]],
    "empty_row": [[1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0]],
    "left": [[0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1], [1, 1, 1, 1, 1, 1]],
    # neighbours of equal length (one batched call each), empty rows in a run, a length seen again later
    "equal_runs": [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1],
                   [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]],
}


def reference(qkv_padded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each row's real tokens alone through plain SDPA -> (B, T, H), zeros at padded positions."""
    b, t, _ = qkv_padded.shape
    out = qkv_padded.new_zeros(b, t, HIDDEN)
    for row in range(b):
        keep = mask[row].bool()
        if not keep.any():
            continue
        q, k, v = qkv_padded[row, keep].view(-1, 3, HEADS, HIDDEN // HEADS).permute(1, 2, 0, 3).unbind(0)
        ctx = F.scaled_dot_product_attention(q[None], k[None], v[None])[0]  # (nh, L, hs)
        out[row, keep] = ctx.transpose(0, 1).reshape(-1, HIDDEN)
    return out


@pytest.mark.parametrize("by_length", [False, True], ids=["batch-order", "by-length"])
@pytest.mark.parametrize("kernel", ["per-sequence", "repad", "jagged"])
@pytest.mark.parametrize("pattern", sorted(MASKS))
def test_packed_kernels_are_exact_for_every_padding_pattern(kernel, pattern, by_length):
    """"jagged" is CUDA's kernel without flash-attn; on the CPU, SDPA runs its nested tensors through the math
    backend (the one CUDA falls back to for a batch the fused kernels decline, such as an empty sequence)."""
    mask = torch.tensor(MASKS[pattern])
    packing = packing_from_mask(mask, by_length=by_length)
    g = torch.Generator().manual_seed(0)
    qkv_padded = torch.randn(*mask.shape, 3 * HIDDEN, generator=g, dtype=torch.float64)
    packed = unpad(qkv_padded, packing).requires_grad_(True)
    ctx = attend(packed, HEADS, HIDDEN // HEADS, packing, kernel=kernel)
    assert ctx.shape == (packing.num_tokens, HIDDEN)
    ref_in = qkv_padded.clone().requires_grad_(True)
    ref = reference(ref_in, mask)
    torch.testing.assert_close(pad(ctx, packing), ref, atol=1e-12, rtol=1e-10)
    # gradients of real tokens: the same upstream gradient through both
    upstream = torch.randn(packing.num_tokens, HIDDEN, generator=g, dtype=torch.float64)
    ctx.backward(upstream)
    ref.backward(pad(upstream, packing))
    torch.testing.assert_close(packed.grad, unpad(ref_in.grad, packing), atol=1e-12, rtol=1e-10)
    assert torch.all(ref_in.grad[mask == 0] == 0)


def test_padded_layout_with_key_mask_matches_the_reference():
    mask = torch.tensor(MASKS["holes"])
    packing = packing_from_mask(mask, packed=False)
    assert not packing.packed
    qkv = torch.randn(*mask.shape, 3 * HIDDEN, dtype=torch.float64)
    ctx = attend(qkv, HEADS, HIDDEN // HEADS, packing)
    torch.testing.assert_close(pad(ctx, packing), reference(qkv, mask), atol=1e-12, rtol=1e-10)


def test_cu_seqlens_and_lengths_follow_the_mask():
    packing = packing_from_mask(torch.tensor(MASKS["holes"]))
    assert packing.lengths == (4, 3, 5)
    assert packing.cu_seqlens.tolist() == [0, 4, 7, 12]
    assert packing.cu_seqlens.dtype == torch.int32
    assert packing.max_seqlen == 5
    assert packing_from_mask(torch.ones(2, 3)) is None  # no padding: no packing at all


def test_inference_packs_sequences_by_length_and_runs_each_length_once(monkeypatch):
    """At CPU inference the packed runs are ordered by length (stable): a length seen again later joins its
    run, so the per-sequence kernel makes one call per distinct length; training keeps batch order."""
    mask = torch.tensor(MASKS["equal_runs"])  # lengths 3, 3, 0, 0, 5, 5, 5, 3
    assert packing_from_mask(mask).order is None  # grad enabled: batch order, as the docstring example
    with torch.inference_mode():
        packing = packing_from_mask(mask)
    assert packing.order.tolist() == [2, 3, 0, 1, 7, 4, 5, 6]
    assert packing.lengths == (0, 0, 3, 3, 3, 5, 5, 5)
    assert packing.cu_seqlens.tolist() == [0, 0, 0, 3, 6, 9, 14, 19, 24]
    rows = packing.indices.view(-1).tolist()
    assert rows[6:9] == [35, 36, 37] and rows[9:14] == [20, 21, 22, 23, 24]  # row 7, then row 4
    example = packing_from_mask(torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0]]), by_length=True)
    assert example.order.tolist() == [1, 2, 0] and example.indices.tolist() == [3, 6, 7, 0, 1, 2]
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(
        attention.F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k)
    )
    qkv = torch.randn(*mask.shape, 3 * HIDDEN, dtype=torch.float64)
    with torch.inference_mode():
        ctx = attend(unpad(qkv, packing), HEADS, HIDDEN // HEADS, packing)
    assert len(calls) == 2  # lengths 3 and 5; batch order would make 3 calls
    torch.testing.assert_close(pad(ctx, packing), reference(qkv, mask), atol=1e-12, rtol=1e-10)


def test_kernel_choice_is_one_rule(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    packed = packing_from_mask(torch.tensor(MASKS["right"]))
    padded = packing_from_mask(torch.tensor(MASKS["right"]), packed=False)
    assert choose_kernel(cpu, torch.float32, None) == "sdpa"
    assert choose_kernel(cpu, torch.float32, padded) == "sdpa"
    with torch.inference_mode():  # inference: no (B, T) copy
        assert choose_kernel(cpu, torch.float32, packed) == "per-sequence"
        assert choose_kernel(cpu, torch.bfloat16, packed) == "per-sequence"
    assert choose_kernel(cpu, torch.float32, packed) == "repad"  # training: one batched backward (faster)
    monkeypatch.setattr(attention, "_has_flash_attn", lambda: True)
    assert choose_kernel(cuda, torch.bfloat16, packed) == "flash-varlen"
    assert choose_kernel(cuda, torch.float32, packed) == "jagged"  # flash-attn computes in fp16/bf16 only
    monkeypatch.setattr(attention, "_has_flash_attn", lambda: False)
    assert choose_kernel(cuda, torch.float16, packed) == "jagged"
    monkeypatch.setattr(torch.jit, "is_tracing", lambda: True)
    assert choose_kernel(cpu, torch.float32, packed) == "repad"  # a trace must not freeze a Python loop


def _batch(pattern: str, seed: int = 0):
    mask = torch.tensor(MASKS[pattern])
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 99, mask.shape, generator=g)
    types = torch.randint(0, 2, mask.shape, generator=g)
    return ids, types, mask


@pytest.mark.parametrize("kernel", ["per-sequence", "jagged"])
@pytest.mark.parametrize("pattern", ["right", "holes", "left", "empty_row"])
def test_encoder_outputs_and_gradients_match_the_repadding_path(pattern, kernel, monkeypatch):
    """Training mode, every padding pattern: the per-sequence kernel (and CUDA's jagged one, run here by SDPA's
    math backend) equals the per-layer re-padding (which CPU training uses by default), outputs and gradients.
    The math backend rounds differently from the fused CPU kernel (1.5e-5 on embedding gradients of ~10 in
    fp32), so jagged is compared in float64."""
    torch.manual_seed(0)
    model = BertModel(TINY).to(torch.float64 if kernel == "jagged" else torch.float32).train()
    ids, types, mask = _batch(pattern)

    def run():
        model.zero_grad()
        out = model(ids, types, mask)
        (out.last_hidden_state.square().sum() + out.pooled_output.sum()).backward()
        return out.last_hidden_state.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    monkeypatch.setattr(attention, "choose_kernel", lambda *a: kernel)
    hidden, grads = run()
    monkeypatch.setattr(attention, "choose_kernel", lambda *a: "repad")
    hidden_old, grads_old = run()
    torch.testing.assert_close(hidden, hidden_old, atol=1e-5, rtol=1e-5)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, grads_old[name], atol=1e-5, rtol=1e-4, msg=name)


def test_padding_never_changes_real_token_gradients():
    torch.manual_seed(0)
    model = BertModel(TINY).train()
    ids, types, mask = _batch("holes")
    model(ids, types, mask).last_hidden_state[mask.bool()].sum().backward()
    batched = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    for row in range(ids.shape[0]):
        keep = mask[row].bool()
        positions = torch.arange(ids.shape[1])[keep][None]
        model(
            ids[row, keep][None], types[row, keep][None], position_ids=positions
        ).last_hidden_state.sum().backward()
    assert not any(name.startswith("pooler.") for name in batched)  # pooled_output is not in the loss
    for name, p in model.named_parameters():
        if name.startswith("pooler."):
            continue
        torch.testing.assert_close(batched[name], p.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("pattern", sorted(MASKS))
def test_padded_layout_of_the_compiled_path_matches_the_packed_one(pattern, monkeypatch):
    torch.manual_seed(0)
    model = BertModel(TINY).eval()
    ids, types, mask = _batch(pattern)
    with torch.inference_mode():
        packed = model(ids, types, mask, output_hidden_states=True)
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
        padded = model(ids, types, mask, output_hidden_states=True)
    for a, b in zip(packed.hidden_states, padded.hidden_states, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    real_rows = mask.any(1)
    torch.testing.assert_close(
        packed.pooled_output[real_rows], padded.pooled_output[real_rows], atol=1e-5, rtol=0
    )
    assert torch.all(padded.last_hidden_state[mask == 0] == 0)


def test_compiled_encoder_has_no_graph_break():
    """dynamo traces the whole forward, padded batch or not: no bool(mask.all()), no nonzero."""
    torch.manual_seed(0)
    model = BertModel(TINY).eval()
    ids, types, mask = _batch("right")
    with torch.inference_mode():
        explained = torch._dynamo.explain(model)(ids, types, mask)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


@pytest.mark.parametrize("name", ["right", "holes", "left"])
def test_attention_probs_are_what_attend_applies(name: str) -> None:
    """probs @ v equals attend()'s context at real queries, in both layouts; padded keys and queries get 0."""
    from bertkit.model.attention import attention_probs

    torch.manual_seed(0)
    mask = torch.tensor(MASKS[name])
    b, t = mask.shape
    qkv = torch.randn(b, t, 3 * HIDDEN)
    packing = packing_from_mask(mask)
    probs = attention_probs(unpad(qkv, packing), HEADS, HIDDEN // HEADS, packing)
    assert probs.shape == (b, HEADS, t, t)
    real = mask.bool()
    assert torch.all(probs.masked_select(~real[:, None, None, :]) == 0)  # padded keys
    assert torch.all(probs.masked_select(~real[:, None, :, None]) == 0)  # padded queries
    sums = probs.sum(-1).transpose(1, 2)[real]
    torch.testing.assert_close(sums, torch.ones_like(sums))
    v = qkv.view(b, t, 3, HEADS, HIDDEN // HEADS)[:, :, 2].transpose(1, 2)  # (B, nh, T, hs)
    ctx = (probs @ v).transpose(1, 2).reshape(b, t, HIDDEN)
    torch.testing.assert_close(ctx[real], reference(qkv, mask)[real], rtol=1e-5, atol=1e-5)
    # the padded layout (a key mask, no packing) gives the same distributions
    padded = packing_from_mask(mask, packed=False)
    torch.testing.assert_close(attention_probs(qkv, HEADS, HIDDEN // HEADS, padded), probs)
    full = attention_probs(qkv[1:2], HEADS, HIDDEN // HEADS, None) if name == "right" else None
    if full is not None:  # row 1 of "right" has no padding: no mask at all gives its distributions
        torch.testing.assert_close(full[0], probs[1])
