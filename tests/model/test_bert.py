"""The encoder and heads on a tiny random config: invariants that need no checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from bertkit.model.bert import BertModel, activation
from bertkit.model.config import BertConfig
from bertkit.model.heads import (
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from bertkit.model.padding import packing_from_mask, pad, unpad

TINY = BertConfig(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
)


def batch(b: int = 13, t: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 99, (b, t), generator=g)
    types = torch.randint(0, 2, (b, t), generator=g)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[0] = t
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
    return ids * mask, types * mask, mask


def test_padding_never_changes_real_token_outputs():
    torch.manual_seed(0)
    model = BertModel(TINY).eval()
    ids, types, mask = batch()
    with torch.no_grad():
        out = model(ids, types, mask, output_hidden_states=True)
        for row in range(ids.shape[0]):
            n = int(mask[row].sum())
            alone = model(ids[row : row + 1, :n], types[row : row + 1, :n], mask[row : row + 1, :n])
            torch.testing.assert_close(
                out.last_hidden_state[row, :n], alone.last_hidden_state[0], atol=1e-5, rtol=0
            )
            torch.testing.assert_close(out.pooled_output[row], alone.pooled_output[0], atol=1e-5, rtol=0)
    assert len(out.hidden_states) == TINY.num_hidden_layers + 1
    assert torch.all(out.last_hidden_state[mask == 0] == 0)


def test_extra_padding_columns_change_nothing():
    torch.manual_seed(1)
    model = BertModel(TINY).eval()
    ids, types, mask = batch(4, 6)
    z = torch.zeros(4, 5, dtype=torch.long)
    with torch.no_grad():
        a = model(ids, types, mask).last_hidden_state
        b = model(torch.cat([ids, z], 1), torch.cat([types, z], 1), torch.cat([mask, z], 1)).last_hidden_state
    torch.testing.assert_close(a, b[:, :6], atol=1e-6, rtol=0)


def test_unpad_pad_round_trip():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    packing = packing_from_mask(mask)
    assert packing.indices.tolist() == [0, 1, 3, 4, 5, 6]
    x = torch.randn(3, 3, 5)
    packed = unpad(x, packing)
    assert packed.shape == (6, 5)
    back = pad(packed, packing)
    torch.testing.assert_close(back[mask.bool()], x[mask.bool()])
    assert torch.all(back[~mask.bool()] == 0)
    assert packing_from_mask(torch.ones(2, 4)) is None


def test_activations_follow_their_published_formulas():
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    erf = 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    tanh = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    torch.testing.assert_close(activation("gelu")(x), erf)  # transformers' meaning of "gelu"
    for google in ("gelu_new", "gelu_google", "gelu_pytorch_tanh"):  # Google modeling.py's gelu
        torch.testing.assert_close(activation(google)(x), tanh)
    torch.testing.assert_close(activation("relu")(x), x.clamp(min=0))
    with pytest.raises(ValueError, match="hidden_act"):
        TINY.replace(hidden_act="swishy")


def test_heads_shapes_and_tied_decoder():
    torch.manual_seed(3)
    ids, types, mask = batch(4, 6)
    cfg = TINY.replace(labels=("a", "b", "c"))
    pre = BertForPreTraining(cfg).eval()
    out = pre(ids, types, mask, masked_positions=torch.tensor([[1, 2]] * 4))
    assert out.mlm_logits.shape == (4, 2, 99) and out.nsp_logits.shape == (4, 2)
    names = [n for n, _ in pre.named_parameters()]
    assert not any("decoder" in n for n in names)  # the decoder is the word embedding matrix
    assert BertForMaskedLM(cfg)(ids, types, mask).shape == (4, 6, 99)
    assert BertForSequenceClassification(cfg)(ids, types, mask).shape == (4, 3)
    assert BertForTokenClassification(cfg)(ids, types, mask).shape == (4, 6, 3)
    span = BertForQuestionAnswering(cfg)(ids, types, mask)
    assert span.start_logits.shape == (4, 6) and span.end_logits.shape == (4, 6)
    mc = BertForMultipleChoice(cfg)
    assert mc(ids.view(2, 2, 6), types.view(2, 2, 6), mask.view(2, 2, 6)).shape == (2, 2)


def test_multiple_choice_scores_each_pair_like_the_encoder_alone():
    torch.manual_seed(4)
    mc = BertForMultipleChoice(TINY).eval()
    ids, types, mask = batch(6, 5)
    with torch.no_grad():
        logits = mc(ids.view(2, 3, 5), types.view(2, 3, 5), mask.view(2, 3, 5))
        pooled = mc.bert(ids, types, mask).pooled_output
        direct = mc.classifier(pooled).view(2, 3)
    torch.testing.assert_close(logits, direct)


def test_gradient_checkpointing_gives_same_gradients():
    ids, types, mask = batch(4, 6)
    grads = []
    for enabled in (False, True):
        torch.manual_seed(5)
        model = BertForSequenceClassification(
            TINY.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        )
        model.set_gradient_checkpointing(enabled)
        model.train()
        model(ids, types, mask).sum().backward()
        grads.append(model.bert.embeddings.word_embeddings.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_too_long_input_is_a_clear_error():
    model = BertModel(TINY)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(torch.ones(1, 65, dtype=torch.long))
