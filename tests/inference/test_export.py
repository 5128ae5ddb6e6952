"""ONNX export: dynamic batch and sequence axes, outputs equal to PyTorch (padded batches, with and without
padding), every supported head, int8 quantization, the CLI, and parity on MiniLM with real sentences (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from bertkit.export.onnx import INT8_FILE, ONNX_FILE, PRETRAINING_HEADS, export_model, export_onnx  # noqa: E402
from bertkit.export.runtime import OnnxModel  # noqa: E402
from bertkit.model.bert import EncoderOutput  # noqa: E402
from bertkit.model.heads import SpanLogits  # noqa: E402
from bertkit.tokenization import Tokenizer  # noqa: E402

TEXTS = ["hello world", "the quick brown fox jumps over the lazy dog again and again", "a", "is it ? yes ."]


def task_folder(tmp: Path, tiny: Path, family: str, options: dict) -> Path:
    from bertkit.tasks import build_task
    from bertkit.training.checkpoint import save_model_folder
    from bertkit.training.config import TrainConfig

    task = build_task(family, options)
    model, _ = task.build_model(str(tiny))
    torch.manual_seed(0)
    for p in model.parameters():  # a non-trivial head, so parity is tested on real numbers
        p.data.add_(0.02 * torch.randn_like(p))
    out = tmp / family
    save_model_folder(out, model, Tokenizer.from_pretrained(tiny), task, TrainConfig(max_seq_length=48))
    return out


@pytest.fixture(scope="module")
def tiny(fixtures_dir: Path) -> Path:
    return fixtures_dir / "tiny-bert-hf"


def torch_model(folder: Path):
    from bertkit.model.registry import MODEL_CLASSES
    from bertkit.weights.load import infer_architecture, load_pretrained

    arch, _ = infer_architecture(folder)
    arch = "BertModel" if arch in PRETRAINING_HEADS else arch  # as export_onnx does
    return load_pretrained(folder, MODEL_CLASSES[arch])[0].eval()


def batches(tokenizer: Tokenizer) -> list[dict]:
    """Shapes the trace never saw: bigger and smaller batches, longer and shorter, padded or not, a pair."""
    return [
        dict(tokenizer(TEXTS)),
        dict(tokenizer(TEXTS[:1])),
        dict(tokenizer([TEXTS[1]] * 3)),  # no padding at all
        dict(tokenizer(TEXTS * 5, ["and a second text"] * 20)),
    ]


def assert_same(ours, ref, mask: torch.Tensor, atol: float) -> None:
    if isinstance(ref, EncoderOutput):
        m = mask.bool()
        torch.testing.assert_close(ours.last_hidden_state[m], ref.last_hidden_state[m], atol=atol, rtol=0)
        torch.testing.assert_close(ours.pooled_output, ref.pooled_output, atol=atol, rtol=0)
    elif isinstance(ref, SpanLogits):
        assert isinstance(ours, SpanLogits)
        m = mask.bool()
        for a, b in zip(ours, ref, strict=True):
            torch.testing.assert_close(a[m], b[m], atol=atol, rtol=0)
    elif ref.dim() == 3:
        m = mask.bool()
        torch.testing.assert_close(ours[m], ref[m], atol=atol, rtol=0)
    else:
        torch.testing.assert_close(ours, ref, atol=atol, rtol=0)


@pytest.mark.parametrize("family", ["encoder", "classification", "qa", "tagging"])
def test_export_matches_pytorch_on_any_batch_shape(tmp_path, tiny, family):
    if family == "encoder":
        source = tiny
    else:
        options = {
            "classification": {"labels": ["a", "b", "c"]},
            "qa": {},
            "tagging": {"labels": ["O", "B-X", "I-X"]},
        }
        source = task_folder(tmp_path, tiny, family, options[family])
    report = export_onnx(source, tmp_path / "onnx")
    assert report.onnx_path == tmp_path / "onnx" / ONNX_FILE
    assert max(report.max_abs_diff.values()) <= 1e-4
    assert (tmp_path / "onnx" / "vocab.txt").is_file() and (tmp_path / "onnx" / "config.json").is_file()
    reference = torch_model(source)
    onnx_model = OnnxModel(report.onnx_path)
    tokenizer = Tokenizer.from_pretrained(source)
    for batch in batches(tokenizer):
        with torch.inference_mode():
            ref = reference(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        ours = onnx_model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        assert_same(ours, ref, batch["attention_mask"], 1e-4)
        hidden = onnx_model.encode(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        assert hidden.last_hidden_state.shape == (*batch["input_ids"].shape, 32)


def test_int8_graph_is_quantized_smaller_and_close(tmp_path, tiny):
    import onnx

    source = task_folder(tmp_path, tiny, "classification", {"labels": ["a", "b"]})
    report = export_onnx(source, tmp_path / "onnx", quantize="int8")
    assert report.int8_path == tmp_path / "onnx" / INT8_FILE
    ops = {node.op_type for node in onnx.load(str(report.int8_path)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    assert report.int8_path.stat().st_size < report.onnx_path.stat().st_size
    assert 0 < report.int8_max_abs_diff["logits"] < 0.05  # quantized: not exact, but close on this scale
    batch = dict(Tokenizer.from_pretrained(source)(TEXTS))
    fp32 = OnnxModel(report.onnx_path)(**batch)
    int8 = OnnxModel(report.int8_path)(**batch)
    assert float((fp32 - int8).abs().max()) < 0.05


def test_torch_dynamic_int8_is_close(tiny):
    from bertkit.export.quantize import quantize_torch

    model = torch_model(tiny)
    batch = dict(Tokenizer.from_pretrained(tiny)(TEXTS))
    with torch.inference_mode():
        ref = model(**batch).last_hidden_state
        q = quantize_torch(model)(**batch).last_hidden_state
    assert "DynamicQuantizedLinear" in repr(quantize_torch(model))
    mask = batch["attention_mask"].bool()
    assert 0 < float((ref - q)[mask].abs().max()) < 0.2


def test_unsupported_heads_and_foreign_graphs_are_refused(tmp_path, tiny):
    from bertkit.model.heads import BertForPreTraining

    with pytest.raises(ValueError, match="not BertForPreTraining"):
        export_model(
            BertForPreTraining.from_pretrained(tiny),
            tmp_path / "x.onnx",
            dict(Tokenizer.from_pretrained(tiny)(TEXTS)),
        )
    with pytest.raises(ValueError, match="must contain padding"):
        export_model(
            torch_model(tiny), tmp_path / "x.onnx", dict(Tokenizer.from_pretrained(tiny)(["a b", "c d"]))
        )
    with pytest.raises(ValueError, match="quantize must be"):
        export_onnx(tiny, tmp_path / "y", quantize="int4")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(tmp_path / "foreign.onnx"))
    with pytest.raises(ValueError, match="not written by `bertkit export`"):
        OnnxModel(tmp_path / "foreign.onnx")
    with pytest.raises(FileNotFoundError, match="bertkit export"):
        OnnxModel(tmp_path / "missing.onnx")


def test_cli_export(tmp_path, tiny, capsys):
    from bertkit.cli.main import main

    source = task_folder(tmp_path, tiny, "classification", {"labels": ["a", "b"]})
    assert (
        main(["export", "--model", str(source), "--output-dir", str(tmp_path / "out"), "--quantize", "int8"])
        == 0
    )
    out = capsys.readouterr().out
    assert "exported BertForSequenceClassification" in out and "int8 graph" in out
    for name in (ONNX_FILE, INT8_FILE, "bertkit.json", "vocab.txt", "tokenizer_config.json", "config.json"):
        assert (tmp_path / "out" / name).is_file(), name


@pytest.mark.slow
def test_minilm_parity_on_real_sentences(tmp_path, minilm_dir, data_dir):
    """all-MiniLM-L6-v2 with a classification head: ONNX logits within 1e-4 of PyTorch on 128 SST-2 dev sentences."""
    from bertkit.model.heads import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(minilm_dir, labels=["neg", "pos"]).eval()
    folder = tmp_path / "minilm-cls"
    model.save_pretrained(folder)
    Tokenizer.from_pretrained(minilm_dir).save_pretrained(folder)
    report = export_onnx(folder, tmp_path / "onnx")
    assert report.max_abs_diff["logits"] <= 1e-4
    lines = (data_dir / "glue" / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:129]
    sentences = [line.split("\t")[0] for line in lines]
    tokenizer = Tokenizer.from_pretrained(folder)
    session = OnnxModel(report.onnx_path)
    worst = 0.0
    for start in range(0, len(sentences), 32):
        batch = dict(tokenizer(sentences[start : start + 32], max_length=128))
        with torch.inference_mode():
            ref = model(**batch)
        worst = max(worst, float((session(**batch) - ref).abs().max()))
    assert worst <= 1e-4
