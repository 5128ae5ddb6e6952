"""runtime.compile_for_inference: the compiled encoder gives the eager outputs, padded batches included."""

from __future__ import annotations

import pytest
import torch

from bertkit.model.bert import BertModel
from bertkit.model.config import BertConfig
from bertkit.runtime import compile_for_inference


@pytest.mark.slow
def test_compiled_encoder_matches_eager():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    eager = BertModel(config).eval()
    twin = BertModel(config)
    twin.load_state_dict(eager.state_dict())
    compiled = compile_for_inference(twin)
    ids = torch.randint(1, 99, (3, 9))
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4, [1] * 2 + [0] * 7])
    with torch.inference_mode():
        for batch_ids, batch_mask in ((ids[:1], mask[:1]), (ids, mask)):
            a = eager(batch_ids, attention_mask=batch_mask)
            b = compiled(batch_ids, attention_mask=batch_mask)
            valid = batch_mask.bool()
            torch.testing.assert_close(
                b.last_hidden_state[valid], a.last_hidden_state[valid], atol=1e-5, rtol=0
            )
            torch.testing.assert_close(b.pooled_output, a.pooled_output, atol=1e-5, rtol=0)
