"""first_token_only: a head that reads only position 0 ([CLS], the pooler) has the last layer computed on those B
rows (bertkit.model.bert). Its reference is the same model computing every position (every_position): the same
outputs, and in training the same dropout masks, so the same loss and the same gradients, for every family's
first-token heads and every padding pattern (right, a hole, position 0 padded, a sequence with no real token,
none at all, the padded layout of torch.compile). transformers' own heads are the reference in test_families."""

from __future__ import annotations

import pytest
import torch

from bertkit.model.bert import BertModel, Layer, every_position
from bertkit.model.config import BertConfig
from bertkit.model.families import family
from bertkit.model.padding import packing_from_mask, pad

SIZES = {"vocab_size": 99, "hidden_size": 24, "num_attention_heads": 3, "intermediate_size": 37, "num_hidden_layers": 2}
CONFIGS = {
    "bert": {"model_type": "bert", **SIZES, "max_position_embeddings": 40},
    "roberta": {"model_type": "roberta", **SIZES, "max_position_embeddings": 42, "type_vocab_size": 1, "pad_token_id": 1},
    "distilbert": {"model_type": "distilbert", "vocab_size": 99, "dim": 24, "n_layers": 2, "n_heads": 3,
                   "hidden_dim": 37, "max_position_embeddings": 40},
    "electra": {"model_type": "electra", **SIZES, "embedding_size": 16, "max_position_embeddings": 40},
    "albert": {"model_type": "albert", **SIZES, "num_hidden_layers": 4, "embedding_size": 16, "num_hidden_groups": 2,
               "inner_group_num": 2, "max_position_embeddings": 40},
}  # fmt: skip
FIRST_TOKEN_HEADS = ("sequence_classification", "multiple_choice")
CASES = [(name, kind) for name in CONFIGS for kind in FIRST_TOKEN_HEADS]
# rows: full length, right padding, a hole, position 0 padded, no real token at all, one token
MASK = torch.tensor(
    [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 0, 1, 1, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]]
)


def head_model(name: str, kind: str, dropout: float = 0.0) -> torch.nn.Module:
    data = {**CONFIGS[name], "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    if name == "distilbert":
        data |= {"dropout": dropout, "attention_dropout": dropout, "seq_classif_dropout": dropout}
    config = BertConfig.from_dict(data).replace(labels=("a", "b", "c"))
    torch.manual_seed(0)
    return family(name).head(kind)(config)


def inputs(kind: str, mask: torch.Tensor | None = MASK) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 99, (6, 6), generator=g)
    types = torch.zeros_like(ids)
    if mask is not None:
        ids = ids * mask + (1 - mask)  # pad id 1 (RoBERTa's) at padded positions; any id is masked out
    if kind == "multiple_choice":
        shape = (2, 3, 6)
        return ids.view(shape), types.view(shape), None if mask is None else mask.view(shape)
    return ids, types, mask


def run(model: torch.nn.Module, args: tuple, every: bool, seed: int = 2) -> torch.Tensor:
    torch.manual_seed(seed)
    if every:
        with every_position(model):
            return model(*args)
    return model(*args)


@pytest.mark.parametrize(("name", "kind"), CASES)
@pytest.mark.parametrize("padded", [True, False], ids=["padded", "unpadded"])
def test_first_token_heads_equal_the_full_last_layer(name, kind, padded):
    model = head_model(name, kind).eval()
    args = inputs(kind, MASK if padded else None)
    with torch.no_grad():
        first, full = run(model, args, every=False), run(model, args, every=True)
    assert first.shape == full.shape
    torch.testing.assert_close(first, full, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_training_gets_the_same_dropout_loss_and_gradients(name, kind):
    """Dropout 0.3 everywhere, one seed: the first-token path draws the whole layer's masks and keeps its rows,
    so the loss and every gradient are those of the full computation (float rounding aside)."""
    model = head_model(name, kind, dropout=0.3).train()
    args = inputs(kind)
    grads = []
    for every in (False, True):
        model.zero_grad()
        loss = run(model, args, every).square().sum()
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (loss_first, g_first), (loss_full, g_full) = grads
    torch.testing.assert_close(loss_first, loss_full, atol=1e-5, rtol=1e-6)
    assert g_first.keys() == g_full.keys()
    for n in g_full:
        torch.testing.assert_close(g_first[n], g_full[n], atol=1e-6, rtol=1e-5, msg=n)
    assert all(torch.isfinite(g).all() for g in g_first.values())  # the row without tokens: no NaN gradients
    with torch.no_grad():  # and the masks did drop: another seed gives another loss
        assert not torch.allclose(run(model, args, every=False, seed=3).square().sum(), loss_first)


def test_torchs_own_dropout_gives_the_same_expectation(monkeypatch):
    """Where bertkit's CPU masks are off (CUDA, torch.compile, CPU_MASKS = False), the [CLS] rows get F.dropout
    and SDPA's dropout_p masks of their own: not the full layer's draw, but the same distribution. Over 400
    draws a side, each logit's mean agrees with the full computation's within 5 standard errors, and the
    gradients are finite."""
    from bertkit.model import dropout as dropout_module

    monkeypatch.setattr(dropout_module, "CPU_MASKS", False)
    model = head_model("bert", "sequence_classification", dropout=0.3).train()
    args = inputs("sequence_classification")
    torch.manual_seed(5)
    with torch.no_grad():
        first = torch.stack([model(*args) for _ in range(400)])
        with every_position(model):
            full = torch.stack([model(*args) for _ in range(400)])
    gap = (first.mean(0) - full.mean(0)).abs()
    standard_error = ((first.var(0) + full.var(0)) / 400).sqrt()
    assert (gap <= 5 * standard_error).all(), (gap / standard_error).nan_to_num().max()
    # the [CLS] rows did drop (rows whose position 0 is padding give a constant)
    assert torch.equal(first.std(0) > 0, full.std(0) > 0) and (first.std(0) > 0).any()
    model(*args).square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_gradient_checkpointing_keeps_the_masks():
    model = head_model("bert", "sequence_classification", dropout=0.3).train()
    args = inputs("sequence_classification")
    grads = []
    for checkpointing in (False, True):
        model.set_gradient_checkpointing(checkpointing)
        model.zero_grad()
        run(model, args, every=False).square().sum().backward()
        grads.append(model.bert.embeddings.word_embeddings.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_the_encoder_output_and_what_turns_it_off():
    model = BertModel(BertConfig.from_dict(CONFIGS["bert"])).eval()
    ids, types, mask = inputs("sequence_classification")
    with torch.no_grad():
        full = model(ids, types, mask)
        first = model(ids, types, mask, first_token_only=True)
        assert first.last_hidden_state.shape == (6, 1, 24)
        torch.testing.assert_close(first.last_hidden_state[:, 0], full.last_hidden_state[:, 0], atol=1e-6, rtol=0)
        torch.testing.assert_close(first.pooled_output, full.pooled_output, atol=1e-6, rtol=0)
        assert torch.all(first.last_hidden_state[3] == 0) and torch.all(first.last_hidden_state[4] == 0)
        # hidden states need every position of every layer: the flag is ignored, as inside every_position()
        assert model(ids, types, mask, output_hidden_states=True, first_token_only=True).last_hidden_state.shape == (6, 6, 24)
        with every_position(model):
            assert model.every_position
            assert model(ids, types, mask, first_token_only=True).last_hidden_state.shape == (6, 6, 24)
        assert not model.every_position


def test_one_layer_in_the_padded_layout_of_torch_compile():
    """Under torch.compile a padded batch stays (B, T, H) with a key mask (packing_from_mask(packed=False))."""
    torch.manual_seed(4)
    layer = Layer(BertConfig.from_dict(CONFIGS["bert"])).eval()
    x = torch.randn(6, 6, 24)
    padded, packed = packing_from_mask(MASK, packed=False), packing_from_mask(MASK)
    with torch.no_grad():
        full = pad(layer(x.reshape(36, 24)[packed.indices], packed), packed)[:, 0]
        for packing, rows in ((padded, x), (packed, x.reshape(36, 24)[packed.indices])):
            torch.testing.assert_close(layer(rows, packing, first_only=True), full, atol=1e-6, rtol=0)
