"""runtime: the compiled encoder gives the eager outputs, padded batches included; check_precision's warning where
bf16 is emulated."""

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


@pytest.mark.slow
def test_compile_encoder_in_feature_extractor_and_head_model(tmp_path):
    """FeatureExtractor(compile=True) and a compiled head model give the eager vectors and logits; the warm-up
    covers batch 1 and padded batches, so the calls below compile nothing new."""
    from bertkit.inference.features import FeatureExtractor
    from bertkit.model.heads import BertForSequenceClassification
    from bertkit.runtime import compile_encoder
    from bertkit.tokenization import Tokenizer

    torch.manual_seed(0)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"the a film movie is was good bad very dull fun".split()]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = Tokenizer.from_vocab(tmp_path / "vocab.txt", do_lower_case=True)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64)  # fmt: skip
    texts = ["the film was good", "a very very dull movie is bad", "fun", "the movie was fun and good"]
    eager = BertModel(config).eval()
    twin = BertModel(config)
    twin.load_state_dict(eager.state_dict())
    plain = FeatureExtractor(eager, tok, "mean").encode(texts)
    fast = FeatureExtractor(twin, tok, "mean", compile=True)
    torch.testing.assert_close(torch.from_numpy(fast.encode(texts)), torch.from_numpy(plain), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.from_numpy(fast.encode(texts[:1])), torch.from_numpy(plain[:1]), atol=1e-5, rtol=0)

    head = BertForSequenceClassification(config.replace(labels=("a", "b", "c"))).eval()
    batch = tok(texts, max_length=16)
    with torch.inference_mode():
        expected = head(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        assert compile_encoder(head) is head and head.bert is not None
        got = head(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_bf16_on_a_cpu_that_emulates_it_warns_once(monkeypatch, caplog):
    """bf16 autocast on a CPU without native bf16 is emulated (~20x slower training on AVX2): one warning per
    process names fp32; a native CPU, fp32 and CUDA get none."""
    from bertkit import runtime

    cpu = torch.device("cpu")
    for native, precision, expected in ((True, "bf16", 0), (False, "fp32", 0), (False, "bf16", 1)):
        monkeypatch.setattr(runtime, "native_bf16", lambda native=native: native)
        monkeypatch.setattr(runtime, "_BF16_EMULATION_WARNED", False)
        caplog.clear()
        with caplog.at_level("WARNING", logger="bertkit.runtime"):
            for _ in range(2):
                runtime.check_precision(precision, cpu)
        warned = [r.getMessage() for r in caplog.records if "emulates" in r.getMessage()]
        assert len(warned) == expected, (native, precision, warned)
    assert "use --precision fp32" in warned[0]
