"""Intermediate matching (bertkit.training.distill_match): the layer map and the hidden / attention losses
against hand-written formulas, padding included."""

from __future__ import annotations

import math

import pytest
import torch

from bertkit.training.distill_match import (
    attention_loss,
    check_heads,
    default_layer_map,
    hidden_loss,
    parse_layer_map,
    projection,
)

MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])  # 5 real tokens, one padded


def test_default_layer_map_is_tinyberts_formula() -> None:
    assert default_layer_map(3, 6) == [(0, 1), (1, 3), (2, 5)]
    assert default_layer_map(2, 12) == [(0, 5), (1, 11)]
    assert default_layer_map(4, 4) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    for s, t in [(3, 12), (5, 7), (1, 3)]:
        assert default_layer_map(s, t) == [(i, (i + 1) * t // s - 1) for i in range(s)]
        assert default_layer_map(s, t)[-1] == (s - 1, t - 1)  # last layer to last layer
    assert parse_layer_map(None, 3, 6) == parse_layer_map("", 3, 6) == [(0, 1), (1, 3), (2, 5)]
    assert parse_layer_map("0:0,2:4", 3, 6) == [(0, 0), (2, 4)]


@pytest.mark.parametrize(
    ("text", "match"),
    [("0:1,3:5", "student layer 3 is out of range 0..2"), ("0:6", "teacher layer 6 is out of range 0..5"),
     ("0-1", "is not student:teacher"), ("a:b", "is not student:teacher")],
)  # fmt: skip
def test_bad_layer_map_is_a_clear_error(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        parse_layer_map(text, 3, 6)
    assert "--layer-map" in str(err.value)
    with pytest.raises(ValueError, match="--layer-map"):
        default_layer_map(4, 2)


def test_head_counts_must_agree() -> None:
    check_heads(4, 4)
    with pytest.raises(ValueError, match=r"--attention-weight.*student 2, teacher 4"):
        check_heads(2, 4)


def test_projection_only_when_widths_differ() -> None:
    assert projection(32, 32) is None
    proj = projection(16, 32)
    assert isinstance(proj, torch.nn.Linear) and (proj.in_features, proj.out_features) == (16, 32)


def test_hidden_loss_is_mse_over_real_tokens() -> None:
    torch.manual_seed(0)
    s = [torch.randn(2, 3, 4), torch.randn(2, 3, 4)]
    t = [torch.randn(2, 3, 4), torch.randn(2, 3, 4)]
    expected = 0.0
    for sl, tl in zip(s, t, strict=True):
        total = sum(((sl[b, i] - tl[b, i]) ** 2).sum() for b in range(2) for i in range(3) if MASK[b, i])
        expected += total / (5 * 4) / 2
    torch.testing.assert_close(hidden_loss(s, t, MASK), torch.as_tensor(expected))
    # the padded token contributes nothing, whatever it holds
    s2 = [x.clone() for x in s]
    s2[0][1, 2] += 100.0
    torch.testing.assert_close(hidden_loss(s2, t, MASK), hidden_loss(s, t, MASK))
    assert hidden_loss(t, t, MASK) == 0
    # through a projection when the widths differ: the same formula on proj(s)
    proj = projection(2, 4)
    narrow = [torch.randn(2, 3, 2)]
    want = sum(((proj(narrow[0][b, i]) - t[0][b, i]) ** 2).sum() for b in range(2) for i in range(3) if MASK[b, i])
    torch.testing.assert_close(hidden_loss(narrow, t[:1], MASK, proj), want / 20)


def _probs(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    keys = mask.bool()[:, None, None, :]
    return torch.softmax(scores.masked_fill(~keys, float("-inf")), -1) * mask.bool()[:, None, :, None]


def test_attention_loss_is_kl_over_heads_and_real_queries() -> None:
    torch.manual_seed(1)
    s = _probs(torch.randn(2, 2, 3, 3), MASK)
    t = _probs(torch.randn(2, 2, 3, 3), MASK)
    kls = []
    for b in range(2):
        for h in range(2):
            for q in range(3):
                if not MASK[b, q]:
                    continue
                kls.append(sum(t[b, h, q, k] * math.log(t[b, h, q, k] / s[b, h, q, k])
                               for k in range(3) if MASK[b, k]))  # fmt: skip
    torch.testing.assert_close(attention_loss([s], [t], MASK), torch.stack(kls).mean())
    assert attention_loss([t], [t], MASK).abs() < 1e-6
    # padded queries and keys contribute nothing, whatever the student puts there
    s2 = s.clone()
    s2[1, :, 2, :] = 0.3
    torch.testing.assert_close(attention_loss([s2], [t], MASK), attention_loss([s], [t], MASK))


def test_capture_and_cache_give_the_encoders_own_states() -> None:
    """Capture records what the encoder computes (hidden states as output_hidden_states gives them, attention
    distributions whose weighted values are the layer's context), in training and eval, and detaches cleanly;
    the teacher cache scattered back by collate_intermediates equals a direct capture (zeros at padding)."""
    from bertkit.model.bert import BertModel
    from bertkit.model.config import BertConfig
    from bertkit.training.distill_match import Capture, collate_intermediates, teacher_intermediates

    torch.manual_seed(0)
    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)  # fmt: skip
    model = BertModel(config)
    ids = torch.tensor([[2, 7, 8, 9, 3], [2, 9, 3, 0, 0]])
    mask = (ids != 0).long()
    real = mask.bool()
    want = model(ids, None, mask, output_hidden_states=True).hidden_states
    capture = Capture(model, [0, 2], [1])
    for training in (True, False):
        model.train(training)
        model(ids, None, mask)
        assert sorted(capture.hidden) == [0, 2] and sorted(capture.attention) == [1]
        for step in (0, 2):
            torch.testing.assert_close(capture.hidden[step][real], want[step + 1][real])
        probs = capture.attention[1]
        sums = probs.sum(-1).transpose(1, 2)[real]
        torch.testing.assert_close(sums, torch.ones_like(sums))
        assert torch.all(probs[1, :, :, 3:] == 0)
    capture.remove()
    capture.reset()
    model(ids, None, mask)
    assert not capture.hidden and not capture.attention

    class Plain:  # the task protocol's collate/forward, enough for teacher_intermediates
        def collate(self, features):  # noqa: ANN001, ANN201
            t = max(len(f["input_ids"]) for f in features)
            rows = [f["input_ids"] + [0] * (t - len(f["input_ids"])) for f in features]
            ids = torch.tensor(rows)
            return {"input_ids": ids, "attention_mask": (ids != 0).long()}

        def forward(self, model, batch):  # noqa: ANN001, ANN201
            return model(batch["input_ids"], None, batch["attention_mask"])

    features = [{"input_ids": [2, 7, 8, 9, 3]}, {"input_ids": [2, 9, 3]}]
    teacher_intermediates(Plain(), model, features, [(0, 0), (1, 2)], True, True, 1, torch.device("cpu"))
    assert features[1]["t_hidden"].shape == (2, 3, 32) and features[1]["t_hidden"].dtype == torch.float16
    assert features[1]["t_attn"].shape == (2, 4, 3, 3)
    batch = collate_intermediates(features, mask)
    direct = Capture(model, [0, 2], [0, 2])
    model.eval()
    model(ids, None, mask)
    for m, step in enumerate((0, 2)):
        torch.testing.assert_close(batch["t_hidden"][m], direct.hidden[step], atol=2e-2, rtol=1e-2)
        torch.testing.assert_close(batch["t_attn"][m], direct.attention[step], atol=2e-3, rtol=1e-2)
    assert torch.all(batch["t_hidden"][:, 1, 3:] == 0)
