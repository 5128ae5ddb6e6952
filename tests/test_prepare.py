"""prepare: a prepared model (weights packed once, the per-ISA row rule, the GELU in the GEMM) gives the plain
model's outputs, copies, quantizes and trains like it; bf16 weights where the CPU is native."""

from __future__ import annotations

import pytest
import torch

from bertkit.model.config import BertConfig

TINY = BertConfig(
    vocab_size=99,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=96,
    max_position_embeddings=64,
)


def _twins(config: BertConfig = TINY):
    from bertkit.model.heads import BertForSequenceClassification

    torch.manual_seed(0)
    plain = BertForSequenceClassification(config).eval()
    twin = BertForSequenceClassification(config)
    twin.load_state_dict(plain.state_dict())
    return plain, twin


def _inputs(b: int = 5, t: int = 11):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 99, (b, t), generator=g)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[0] = t
    return ids, torch.zeros_like(ids), (torch.arange(t)[None] < lengths[:, None]).long()


@pytest.mark.parametrize("shape", [(1, 1), (1, 16), (5, 11), (40, 20)])  # 1 row, packed rows, > 256 rows
def test_prepared_model_gives_the_plain_outputs_in_fp32(shape):
    from bertkit.prepare import PreparedLinear, prepare_for_inference

    plain, twin = _twins()
    prepared = prepare_for_inference(twin, "fp32")
    linears = [m for m in prepared.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(type(m) is PreparedLinear for m in linears)
    ids, types, mask = _inputs(*shape)
    with torch.inference_mode():
        a = plain.bert(ids, types, mask)
        b = prepared.bert(ids, types, mask)
        torch.testing.assert_close(b.last_hidden_state, a.last_hidden_state, atol=1e-4, rtol=0)
        torch.testing.assert_close(prepared(ids, types, mask), plain(ids, types, mask), atol=1e-4, rtol=0)


def test_prepared_model_copies_and_quantizes_like_the_plain_one():
    """A prepared model deep-copies (the packed weight is left behind and packed again), and dynamic
    int8 quantization reaches its linears (it matches nn.Linear by type) with the plain model's outputs."""
    import copy

    from bertkit.export.quantize import quantize_torch
    from bertkit.prepare import PreparedLinear, prepare_for_inference

    plain, twin = _twins()
    prepared = prepare_for_inference(twin, "fp32")
    ids, types, mask = _inputs(5, 11)
    copied = copy.deepcopy(prepared)
    with torch.inference_mode():
        expected = plain(ids, types, mask)
        assert all(type(m) is PreparedLinear for m in copied.modules() if isinstance(m, torch.nn.Linear))
        torch.testing.assert_close(copied(ids, types, mask), expected, atol=1e-4, rtol=0)
        copied_here = copy.deepcopy(prepared)  # inside inference_mode: its weights are inference tensors
        torch.testing.assert_close(copied_here(ids, types, mask), expected, atol=1e-4, rtol=0)
        q_plain, q_prepared = quantize_torch(plain), quantize_torch(prepared)
        assert repr(q_prepared).count("DynamicQuantizedLinear") == repr(q_plain).count("DynamicQuantizedLinear") > 0
        torch.testing.assert_close(q_prepared(ids, types, mask), q_plain(ids, types, mask), atol=0, rtol=0)
        torch.testing.assert_close(prepared(ids, types, mask), expected, atol=1e-4, rtol=0)  # the source unchanged


def test_prepared_model_keeps_its_state_dict_and_trains_like_the_plain_one():
    from bertkit.prepare import prepare_for_inference

    plain, twin = _twins()
    keys = list(twin.state_dict())
    prepared = prepare_for_inference(twin, "fp32")
    assert list(prepared.state_dict()) == keys
    for name, value in plain.state_dict().items():
        assert torch.equal(prepared.state_dict()[name], value)
    ids, types, mask = _inputs()
    grads = []
    for model in (plain, prepared):
        model.train()
        torch.manual_seed(3)  # the same dropout masks
        model(ids, types, mask).square().sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-5, msg=name)
    # an optimizer step changes the weights in place: the packed copy follows, it is never stale
    for model in (plain, prepared):
        torch.optim.SGD(model.parameters(), lr=0.5).step()
        model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(prepared(ids, types, mask), plain(ids, types, mask), atol=1e-4, rtol=0)


def test_packing_rule(monkeypatch):
    from bertkit import prepare, runtime

    cpu = torch.device("cpu")
    assert prepare.inference_packing(torch.device("cuda"), "fp32") == "none"
    assert prepare.inference_packing(torch.device("cuda"), "bf16") == "none"
    assert prepare.inference_packing(cpu, "fp32") == ("mkldnn" if torch.backends.mkldnn.is_available() else "none")
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)
    assert prepare.inference_packing(cpu, "bf16") == "none"  # the caller keeps autocast
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        prepare.prepare_for_inference(torch.nn.Linear(2, 2), "fp16")


def test_fp32_preparation_names_bf16_once_where_the_cpu_has_it(monkeypatch, caplog):
    from bertkit import prepare, runtime

    if not torch.backends.mkldnn.is_available():
        pytest.skip("torch without oneDNN packs nothing")
    this_cpu = runtime.native_bf16
    for native, expected in ((False, 0), (True, 1)):
        monkeypatch.setattr(runtime, "native_bf16", lambda native=native: native)
        monkeypatch.setattr(prepare, "_BF16_HINTED", False)
        caplog.clear()
        with caplog.at_level("INFO", logger="bertkit.prepare"):
            for _ in range(2):  # once per process, not once per model
                prepare.prepare_for_inference(torch.nn.Sequential(torch.nn.Linear(2, 2)), "fp32")
        assert sum("--precision bf16" in r.getMessage() for r in caplog.records) == expected
    caplog.clear()
    monkeypatch.setattr(prepare, "_BF16_HINTED", False)
    monkeypatch.setattr(runtime, "native_bf16", this_cpu)  # bf16 weights are packed only where they can be
    with caplog.at_level("INFO", logger="bertkit.prepare"):
        prepare.prepare_for_inference(torch.nn.Sequential(torch.nn.Linear(2, 2)), "bf16")
    assert not any("--precision bf16 keeps" in r.getMessage() for r in caplog.records)  # already asked for


def test_bf16_weights_are_packed_once_and_match_autocast():
    from bertkit.prepare import bf16_weights_prepared, prepare_for_inference
    from bertkit.runtime import native_bf16

    if not native_bf16():
        pytest.skip("this CPU has no native bf16 (AVX-512-BF16 / AMX)")
    plain, twin = _twins()
    prepared = prepare_for_inference(twin, "bf16")
    assert bf16_weights_prepared(prepared) and not bf16_weights_prepared(plain)
    assert all(m._packed.dtype == torch.bfloat16 for m in prepared.modules() if hasattr(m, "_packed"))
    ids, types, mask = _inputs()
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reference = plain(ids, types, mask).float()
        exact = plain(ids, types, mask)
        ours = prepared(ids, types, mask).float()
    # bf16 has 8 significant bits: both bf16 paths sit as far from fp32 as each other
    assert (ours - exact).abs().max() <= 2 * (reference - exact).abs().max() + 1e-3
    torch.testing.assert_close(ours, reference, atol=5e-2, rtol=0)


def test_feature_extractor_loads_prepared_with_todays_outputs(minilm_dir):
    from bertkit.inference.features import FeatureExtractor
    from bertkit.model.bert import BertModel
    from bertkit.prepare import PreparedLinear
    from bertkit.tokenization import Tokenizer

    texts = ["a short one", "the film is a charming and often affecting journey through a world of wonder"]
    default = FeatureExtractor.from_pretrained(minilm_dir)
    assert any(isinstance(m, PreparedLinear) for m in default.model.modules())
    plain = FeatureExtractor(
        BertModel.from_pretrained(minilm_dir),
        Tokenizer.from_pretrained(minilm_dir),
        default.pooling,
        normalize=default.normalize,
        max_length=default.max_length,
    )
    assert not any(isinstance(m, PreparedLinear) for m in plain.model.modules())
    np = pytest.importorskip("numpy")
    np.testing.assert_allclose(default.encode(texts), plain.encode(texts), atol=1e-4, rtol=0)
    np.testing.assert_allclose(default.encode(texts[1]), plain.encode(texts[1]), atol=1e-4, rtol=0)


def test_the_packed_rows_rule_follows_the_cpus_isa():
    """prepare.FP32_PACKED_ROWS, measured per ISA: AVX-512 packs 2-256 rows and folds the GELU in from 2 rows
    up; AVX2 (and any ISA not measured) packs 2-64 rows and folds the GELU in at 2-8 rows only."""
    from bertkit.prepare import PackedRows, fp32_packed_rows

    inf = float("inf")
    assert fp32_packed_rows("AVX512") == PackedRows(gemm=(2, 256), post_op=(2, inf))
    assert fp32_packed_rows("AVX2") == PackedRows(gemm=(2, 64), post_op=(2, 8))
    assert fp32_packed_rows("DEFAULT") == fp32_packed_rows("SVE256") == fp32_packed_rows("AVX2")
    assert fp32_packed_rows() == fp32_packed_rows(torch.backends.cpu.get_cpu_capability())


# rows -> (ffn_in path, ffn_out path), per ISA rule: a GEMV; post-op rows on both; past AVX2's post-op rows;
# past AVX2's packed rows; past AVX-512's packed rows; far past
FFN_PATHS = {
    "AVX512": {1: ("plain", "plain"), 4: ("fused", "packed"), 16: ("fused", "packed"),
               100: ("fused", "packed"), 300: ("fused", "plain"), 900: ("fused", "plain")},
    "AVX2": {1: ("plain", "plain"), 4: ("fused", "packed"), 16: ("packed", "packed"),
             100: ("plain", "plain"), 300: ("plain", "plain"), 900: ("plain", "plain")},
}  # fmt: skip


@pytest.mark.parametrize("isa", sorted(FFN_PATHS))
@pytest.mark.parametrize("rows", [1, 4, 16, 100, 300, 900])
def test_prepared_ffn_applies_the_exact_gelu_in_its_gemm(rows, isa, monkeypatch):
    """prepare_for_inference folds the Layer's exact GELU into ffn_in: a oneDNN post-op where the ISA's rule
    says so, else the packed or the plain GEMM and then F.gelu. On every path the block's output equals the
    unprepared block's, the activation runs once (the Layer skips its own), and training and unprepare see
    a plain linear + GELU again."""
    from bertkit import prepare
    from bertkit.model.bert import Layer
    from bertkit.prepare import PreparedLinear, prepare_for_inference, unprepare

    monkeypatch.setattr(prepare, "fp32_packed_rows", lambda: prepare.FP32_PACKED_ROWS[isa])
    torch.manual_seed(4)
    plain = Layer(TINY).eval()
    twin = Layer(TINY)
    twin.load_state_dict(plain.state_dict())
    prepared = prepare_for_inference(twin, "fp32")
    assert isinstance(prepared.ffn_in, PreparedLinear) and prepared.ffn_in.activation == "gelu"
    assert prepared.ffn_out.activation == "none" and prepared.attention.qkv.activation == "none"
    x = torch.randn(1, rows, TINY.hidden_size)  # (B, T, H), no padding
    with torch.inference_mode():
        inner = torch.randn(1, rows, TINY.intermediate_size)
        assert (prepared.ffn_in.path(x), prepared.ffn_out.path(inner)) == FFN_PATHS[isa][rows]
        expected = plain(x, None)
        torch.testing.assert_close(prepared(x, None), expected, atol=1e-5, rtol=0)
        h = prepared.ffn_in(x)
        torch.testing.assert_close(h, torch.nn.functional.gelu(plain.ffn_in(x)), atol=1e-5, rtol=0)
    prepared.train()
    torch.testing.assert_close(prepared.ffn_in(x), torch.nn.functional.gelu(plain.ffn_in(x)), atol=1e-6, rtol=0)
    unprepare(prepared.eval())
    assert type(prepared.ffn_in) is torch.nn.Linear
    with torch.inference_mode():
        torch.testing.assert_close(prepared(x, None), expected, atol=1e-6, rtol=0)


def test_only_exact_gelu_is_folded():
    from dataclasses import replace

    from bertkit.model.bert import Layer
    from bertkit.prepare import prepare_for_inference

    for act in ("relu", "gelu_new"):
        layer = prepare_for_inference(Layer(replace(TINY, hidden_act=act)), "fp32")
        assert layer.ffn_in.activation == "none", act
