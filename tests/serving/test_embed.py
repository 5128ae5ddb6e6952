"""The server's Embedder: a pooling that reads only [CLS] (cls, pooler) runs the encoder's last layer at [CLS]
alone (BertModel's first_token_only), with transformers' full forward as the reference; every other pooling and
/embed_all get every position."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertkit.serving.backend import Backend
from bertkit.serving.config import ServeConfig

TEXTS = ["hello world", "the quick brown fox jumps over the lazy dog", "a", "Hello, World! It's 9am."]


def _reference(folder):
    transformers = pytest.importorskip("transformers")
    tok = transformers.BertTokenizer.from_pretrained(str(folder))
    model = transformers.BertModel.from_pretrained(str(folder)).eval()
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch), batch["attention_mask"]


def _positions_seen(backend: Backend) -> list[int]:
    """The last_hidden_state lengths the encoder returns from now on."""
    seen: list[int] = []
    backend.embedder._encoder.register_forward_hook(
        lambda module, args, out: seen.append(out.last_hidden_state.shape[1])
    )
    return seen


@pytest.mark.parametrize("pooling", ["cls", "pooler"])
def test_cls_and_pooler_pooling_run_the_last_layer_at_cls_alone(encoder_dir, pooling):
    ref, _ = _reference(encoder_dir)
    want = ref.last_hidden_state[:, 0] if pooling == "cls" else ref.pooler_output
    backend = Backend(ServeConfig(model=str(encoder_dir), pooling=pooling, max_batch_tokens=512))
    seen = _positions_seen(backend)
    got = np.stack(backend.embed(backend.tokenize(TEXTS, None)))
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    assert seen == [1]  # one batch, its last layer at position 0 only
    tokens = backend.embed_tokens(backend.tokenize(TEXTS[:1], None))  # /embed_all: every position
    np.testing.assert_allclose(tokens[0], ref.last_hidden_state[0, : len(tokens[0])].numpy(), atol=1e-5)
    assert seen[-1] == len(tokens[0]) > 1


def test_mean_pooling_gets_every_position(encoder_dir):
    ref, mask = _reference(encoder_dir)
    m = mask.unsqueeze(-1).float()
    want = (ref.last_hidden_state * m).sum(1) / m.sum(1)
    backend = Backend(ServeConfig(model=str(encoder_dir), pooling="mean", max_batch_tokens=512))
    seen = _positions_seen(backend)
    got = np.stack(backend.embed(backend.tokenize(TEXTS, None)))
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    assert seen == [int(mask.sum(1).max())]
