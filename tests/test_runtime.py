"""runtime: the compiled encoder gives the eager outputs, padded batches included; check_precision's warning where
bf16 is emulated; freed memory kept for reuse (glibc's malloc thresholds), counted in page faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bertkit.model.bert import BertModel
from bertkit.model.config import BertConfig
from bertkit.runtime import compile_for_inference

TINY = BertConfig(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
)


@pytest.mark.slow
def test_compiled_encoder_matches_eager():
    torch.manual_seed(0)
    config = TINY
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


# ---- freed memory kept for reuse ---------------------------------------------------------------------------
def _glibc() -> bool:
    try:
        return sys.platform == "linux" and bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


GLIBC = _glibc()
THP_ALWAYS = "[always]" in (Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text() if GLIBC else "")
# A fresh process (the thresholds are per process and set once): a 48 MiB tensor, above the largest mmap
# threshold glibc adapts to (32 MiB), made and freed twice, then 10 more; the minor page faults of those 10.
REUSE = """
import json, resource, torch
from bertkit import runtime
kept = runtime.keep_freed_memory()
for _ in range(2):
    x = torch.ones(12 << 20); del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    x = torch.ones(12 << 20); del x
print(json.dumps([kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before]))
"""
PAGES_48MIB = (48 << 20) // 4096


def _fresh_process(code: str, **env: str) -> list:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    clean.pop("BERTKIT_KEEP_FREED_MEMORY", None)
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                         check=True, timeout=300)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
@pytest.mark.parametrize(
    ("env", "kept"),
    [({}, True), ({"BERTKIT_KEEP_FREED_MEMORY": "0"}, False), ({"MALLOC_TRIM_THRESHOLD_": "131072"}, False)],
    ids=["default", "opt-out", "user-malloc-settings"],
)
def test_freed_blocks_are_reused_instead_of_faulted_in_again(env, kept):
    """Kept: ten 48 MiB tensors reuse the pages of those before (the heap may grow by one more block when a
    small allocation lands in a freed one: measured 0 or 12,288 faults). Off (BERTKIT_KEEP_FREED_MEMORY=0, or
    the user's own MALLOC_* settings, which bertkit leaves alone): every one is new memory from the kernel, at
    least one fault per 4 KiB page (fewer only with transparent huge pages set to always)."""
    got_kept, faults = _fresh_process(REUSE, **env)
    assert got_kept is kept
    if kept:
        assert faults <= 2 * PAGES_48MIB, faults
    elif not THP_ALWAYS:
        assert faults >= 10 * PAGES_48MIB * 0.9, faults


def test_cpu_runs_and_inference_keep_freed_memory(monkeypatch):
    """start() on the CPU (train, eval, predict) and prepare_for_inference of a CPU model turn it on."""
    from bertkit import runtime
    from bertkit.prepare import prepare_for_inference

    calls = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append(1) or True)
    runtime.start("cpu")
    assert calls == [1]
    prepare_for_inference(BertModel(TINY))
    assert calls == [1, 1]


# Encodes whose batch's FFN activation is 36 MiB (96 texts of 64 tokens, MiniLM's 1536-wide FFN): the page
# faults of 3 after two warm-ups, and whether the vectors moved.
ENCODE = """
import json, resource, sys, numpy as np, torch
from bertkit.inference.features import FeatureExtractor
torch.set_num_threads(1)
fe = FeatureExtractor.from_pretrained(sys.argv[1], device="cpu")
texts = [" ".join(["word"] * 62)] * 96
for _ in range(2):
    first = fe.encode(texts)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    again = fe.encode(texts)
print(json.dumps([resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, float(np.abs(again - first).max()),
                  again[0, :4].tolist()]))
"""


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_minilm_encode_reuses_its_activation_memory(minilm_dir):
    """Through FeatureExtractor, encodes of one 6,144-token batch: with BERTKIT_KEEP_FREED_MEMORY=0 each layer's
    FFN activation alone is 9,216 new pages (measured: ~115,000 faults per encode in all); kept, a tenth of that
    at most (measured 34 and 9,252 over three encodes). Same vectors either way."""
    code = ENCODE.replace("sys.argv[1]", repr(str(minilm_dir)))
    kept_faults, kept_drift, kept_head = _fresh_process(code)
    off_faults, off_drift, off_head = _fresh_process(code, BERTKIT_KEEP_FREED_MEMORY="0")
    print(f"page faults of three encodes: {kept_faults} kept, {off_faults} with BERTKIT_KEEP_FREED_MEMORY=0")
    assert kept_drift == off_drift == 0.0 and kept_head == off_head
    assert off_faults >= 3 * 6 * 9216 and kept_faults * 10 < off_faults, (kept_faults, off_faults)
