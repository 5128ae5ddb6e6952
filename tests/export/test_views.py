"""bertkit.export.views: each head's graph computes the model, whole; a class without a view is refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bertkit.export.views import TaggerView, split_bilstm, view_for
from bertkit.model.config import BertConfig
from bertkit.model.heads import BertForPreTraining
from bertkit.model.tagger import BertForTagging


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and a shared 2-core machine makes two threads spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(**kw) -> BertConfig:
    return BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=37, max_position_embeddings=64, labels=("O", "B-X", "I-X", "B-Y", "I-Y"), **kw)  # fmt: skip


def padded_batch(lengths: list[int], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = max(lengths)
    ids = torch.randint(5, 99, (len(lengths), t), generator=g)
    mask = (torch.arange(t) < torch.tensor(lengths)[:, None]).long()
    return {"input_ids": ids * mask, "token_type_ids": torch.zeros_like(ids), "attention_mask": mask}


@pytest.mark.parametrize("head", ["softmax", "crf", "lstm_crf"])
def test_tagger_view_equals_the_model_on_real_tokens(head):
    """The packed BiLSTM of the model and the two one-way LSTMs of the view give the same scores."""
    torch.manual_seed(0)
    model = BertForTagging(tiny_config(), head).eval()
    view = TaggerView(model).eval()
    for lengths in ([9, 3, 1, 7], [6, 6], [1]):
        batch = padded_batch(lengths)
        with torch.inference_mode():
            ref = model(**batch)
            ours, hidden = view(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        mask = batch["attention_mask"].bool()
        torch.testing.assert_close(ours[mask], ref[mask], atol=1e-6, rtol=0)
        assert hidden.shape == (*batch["input_ids"].shape, 32)


def test_the_lstm_matters_so_the_view_test_can_fail():
    """Without its LSTM (what export used to do) the tagger's scores are far from the model's."""
    torch.manual_seed(0)
    model = BertForTagging(tiny_config(), "lstm_crf").eval()
    batch = padded_batch([9, 3, 1, 7])
    with torch.inference_mode():
        ref = model(**batch)
        hidden = model.bert(**batch).last_hidden_state
        without = model.classifier(hidden)
    mask = batch["attention_mask"].bool()
    assert float((without - ref)[mask].abs().max()) > 1e-2


def test_split_bilstm_refuses_what_it_cannot_rewrite():
    with pytest.raises(ValueError, match="one-layer batch-first BiLSTM"):
        split_bilstm(nn.LSTM(8, 4, num_layers=2, batch_first=True, bidirectional=True))
    with pytest.raises(ValueError, match="torch backend"):
        split_bilstm(nn.LSTM(8, 4, batch_first=True))


def test_a_model_class_without_a_view_is_refused_by_name():
    with pytest.raises(ValueError, match="not BertForPreTraining.*drop part of the model"):
        view_for(BertForPreTraining(tiny_config()))

    class MyHead(nn.Module):
        pass

    with pytest.raises(ValueError, match="not MyHead"):
        view_for(MyHead())
