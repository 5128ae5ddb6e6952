"""Every checkpoint format gives the reference outputs of ../shared/fixtures/expected.json, without TensorFlow."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from bertkit.model.bert import BertModel
from bertkit.model.heads import BertForPreTraining, BertForSequenceClassification, BertForTokenClassification
from bertkit.weights.hf import hf_state_dict
from bertkit.weights.load import infer_architecture, load_pretrained

CHECKPOINTS = [
    "tiny-bert-tf",
    "tiny-bert-tf-with-optimizer",
    "tiny-bert-tf-with-tf-adam",
    "tiny-bert-hf",
    "tiny-bert-hf-legacy-names",
]


def run_cases(model, expected, dtype, block="float64"):
    """Max abs diff per output over all cases, valid positions only (padded ones are zeros in bertkit)."""
    model = model.to(dtype)
    worst = dict.fromkeys(("sequence_output", "pooled_output", "mlm_logits", "nsp_logits"), 0.0)
    for case in expected["cases"]:
        ids, types, mask = (torch.tensor(case[k]) for k in ("input_ids", "token_type_ids", "attention_mask"))
        positions = torch.tensor(case["mlm_positions"]).expand(ids.shape[0], -1)
        ref = case[block]
        with torch.no_grad():
            enc = model.bert(ids, types, mask)
            logits = model(ids, types, mask, masked_positions=positions)
        valid = mask.bool()
        pos_valid = valid.gather(1, positions)
        diffs = {
            "sequence_output": (
                enc.last_hidden_state.double() - torch.tensor(ref["sequence_output"], dtype=torch.float64)
            )[valid],
            "pooled_output": enc.pooled_output.double()
            - torch.tensor(ref["pooled_output"], dtype=torch.float64),
            "mlm_logits": (logits.mlm_logits.double() - torch.tensor(ref["mlm_logits"], dtype=torch.float64))[
                pos_valid
            ],
            "nsp_logits": logits.nsp_logits.double() - torch.tensor(ref["nsp_logits"], dtype=torch.float64),
        }
        for key, d in diffs.items():
            worst[key] = max(worst[key], d.abs().max().item())
    return worst


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_every_format_reproduces_reference(name, fixtures_dir, expected):
    model, report = load_pretrained(fixtures_dir / name, BertForPreTraining)
    assert report.initialized == () and report.unused == ()
    assert report.loaded == 46
    for dtype, atol in ((torch.float32, 1e-5), (torch.float64, 1e-9)):
        worst = run_cases(model, expected, dtype)
        assert max(worst.values()) < atol, (dtype, worst)


def test_optimizer_slots_are_skipped_and_reported(fixtures_dir):
    _, google = load_pretrained(fixtures_dir / "tiny-bert-tf-with-optimizer", BertForPreTraining)
    _, adam = load_pretrained(fixtures_dir / "tiny-bert-tf-with-tf-adam", BertForPreTraining)
    assert google.optimizer_slots == 93  # adam_m + adam_v for 46 variables, and global_step
    assert adam.optimizer_slots == 95  # Adam + Adam_1, beta1_power, beta2_power, global_step
    assert "optimizer" in str(adam)


def test_google_tanh_gelu_mode_matches_tensorflow(fixtures_dir, expected):
    model, _ = load_pretrained(
        fixtures_dir / "tiny-bert-tf", BertForPreTraining, config_overrides={"hidden_act": "gelu_new"}
    )
    worst = run_cases(model, expected, torch.float64, block="tf_google_tanh_gelu_float64")
    assert max(worst.values()) < 1e-9, worst


def test_hidden_states_match(fixtures_dir, expected):
    model, _ = load_pretrained(fixtures_dir / "tiny-bert-hf", BertModel)
    case = expected["cases"][0]
    model = model.double()
    with torch.no_grad():
        out = model(
            torch.tensor(case["input_ids"]),
            torch.tensor(case["token_type_ids"]),
            torch.tensor(case["attention_mask"]),
            output_hidden_states=True,
        )
    ref = torch.tensor(case["float64"]["hidden_states"], dtype=torch.float64)
    assert torch.stack(out.hidden_states).sub(ref).abs().max() < 1e-9


def test_new_head_is_reported_in_one_sentence(fixtures_dir):
    model, report = load_pretrained(
        fixtures_dir / "tiny-bert-tf", BertForSequenceClassification, labels=["neg", "pos", "mixed"]
    )
    assert report.initialized == ("classifier.weight", "classifier.bias")
    text = str(report)
    assert (
        "newly initialised" in text and "classifier.weight" in text and "cls/predictions/output_bias" in text
    )
    assert model.config.labels == ("neg", "pos", "mixed")


def test_keras_bert_checkpoint_loads(models_dir):
    model, report = load_pretrained(models_dir / "keras-bert-test-checkpoint", BertForPreTraining)
    assert model.config.hidden_size == 4 and report.loaded > 0
    with torch.no_grad():
        out = model(torch.tensor([[2, 3, 4, 5]]))
    assert torch.isfinite(out.mlm_logits).all()


def test_infer_architecture(fixtures_dir, minilm_dir):
    assert infer_architecture(fixtures_dir / "tiny-bert-tf") == ("BertForPreTraining", None)
    assert infer_architecture(fixtures_dir / "tiny-bert-hf")[0] == "BertForPreTraining"
    assert infer_architecture(minilm_dir)[0] == "BertModel"


# ---- bad input: clear errors naming the file and the fix -------------------------------------------------
def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a BERT model folder"):
        load_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a model folder, an alias"):
        load_pretrained(str(tmp_path / "nope" / "x" / "y"))


def test_truncated_safetensors(tmp_path, fixtures_dir):
    shutil.copytree(fixtures_dir / "tiny-bert-hf", tmp_path / "m")
    (tmp_path / "m" / "pytorch_model.bin").unlink()
    data = (tmp_path / "m" / "model.safetensors").read_bytes()
    (tmp_path / "m" / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model.safetensors.*corrupt or truncated"):
        load_pretrained(tmp_path / "m")


def test_sharded_checkpoint_reproduces_reference_and_a_damaged_index_is_named(tmp_path, fixtures_dir, expected):
    """A checkpoint that transformers saved in shards (model.safetensors.index.json + shard files, as large
    models ship) loads to the reference outputs; an index that is not JSON or has no weight_map is named."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "sharded"
    hf = transformers.BertForPreTraining.from_pretrained(fixtures_dir / "tiny-bert-hf")
    hf.save_pretrained(folder, max_shard_size="40KB")
    index = folder / "model.safetensors.index.json"
    assert index.is_file() and len(list(folder.glob("model-*-of-*.safetensors"))) > 1
    model, report = load_pretrained(folder, BertForPreTraining)
    assert report.initialized == () and report.loaded == 46
    worst = run_cases(model, expected, torch.float32)
    assert max(worst.values()) < 1e-5, worst
    text = index.read_text()
    index.write_text(text[: len(text) // 2])  # an interrupted download
    with pytest.raises(ValueError, match=r"model.safetensors.index.json:\d+: not valid JSON .*restore it"):
        load_pretrained(folder, BertForPreTraining)
    index.write_text(json.dumps({"metadata": {}}))
    with pytest.raises(ValueError, match=r"index.json: no weight_map of tensor names to shard files"):
        load_pretrained(folder, BertForPreTraining)


def test_truncated_tf_checkpoint(tmp_path, fixtures_dir):
    shutil.copytree(fixtures_dir / "tiny-bert-tf", tmp_path / "m")
    data_file = tmp_path / "m" / "bert_model.ckpt.data-00000-of-00001"
    data_file.write_bytes(data_file.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated"):
        load_pretrained(tmp_path / "m")


def test_config_that_does_not_match_weights(tmp_path, fixtures_dir):
    shutil.copytree(fixtures_dir / "tiny-bert-hf", tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["intermediate_size"] = 40
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"intermediate.dense.*shape.*does not match the weights"):
        load_pretrained(tmp_path / "m")


def test_config_with_more_layers_than_weights(tmp_path, fixtures_dir):
    shutil.copytree(fixtures_dir / "tiny-bert-tf", tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "bert_config.json").read_text())
    cfg["num_hidden_layers"] = 3
    (tmp_path / "m" / "bert_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"no tensor 'bert/encoder/layer_2/"):
        load_pretrained(tmp_path / "m")


def test_vocab_size_mismatch(tmp_path, fixtures_dir):
    shutil.copytree(fixtures_dir / "tiny-bert-hf", tmp_path / "m")
    with open(tmp_path / "m" / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("extra\n")
    with pytest.raises(ValueError, match=r"vocab.txt has 333 tokens.*vocab_size=332"):
        load_pretrained(tmp_path / "m")


# ---- writing -------------------------------------------------------------------------------------------------
def test_save_then_load_is_exact(tmp_path, fixtures_dir):
    model, _ = load_pretrained(
        fixtures_dir / "tiny-bert-hf", BertForTokenClassification, labels=["O", "B-X", "I-X"]
    )
    model.save_pretrained(tmp_path / "out")
    again, report = load_pretrained(tmp_path / "out", BertForTokenClassification)
    assert report.initialized == () and again.config.labels == ("O", "B-X", "I-X")
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_hf_keys_round_trip(fixtures_dir):
    from safetensors.torch import load_file

    model, _ = load_pretrained(fixtures_dir / "tiny-bert-hf", BertForPreTraining)
    ours = hf_state_dict(model)
    theirs = load_file(str(fixtures_dir / "tiny-bert-hf" / "model.safetensors"))
    assert set(ours) == set(theirs)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key


@pytest.mark.parametrize("cls_name", ["BertForPreTraining", "BertForSequenceClassification", "BertModel"])
def test_transformers_loads_saved_folder(tmp_path, fixtures_dir, cls_name):
    transformers = pytest.importorskip("transformers")
    from bertkit.model.registry import MODEL_CLASSES

    ours, _ = load_pretrained(
        fixtures_dir / "tiny-bert-tf",
        MODEL_CLASSES[cls_name],
        num_labels=3 if cls_name == "BertForSequenceClassification" else None,
    )
    ours.save_pretrained(tmp_path / "out")
    theirs, info = getattr(transformers, cls_name).from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    theirs.eval()
    ids = torch.tensor([[6, 30, 40, 50, 7, 0], [6, 31, 7, 41, 7, 8]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    types = torch.tensor([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]])
    with torch.no_grad():
        a = ours(ids, types, mask)
        b = theirs(input_ids=ids, token_type_ids=types, attention_mask=mask)
    if cls_name == "BertForPreTraining":
        torch.testing.assert_close(
            a.mlm_logits[mask.bool()], b.prediction_logits[mask.bool()], atol=1e-5, rtol=0
        )
        torch.testing.assert_close(a.nsp_logits, b.seq_relationship_logits, atol=1e-5, rtol=0)
    elif cls_name == "BertModel":
        torch.testing.assert_close(
            a.last_hidden_state[mask.bool()], b.last_hidden_state[mask.bool()], atol=1e-5, rtol=0
        )
        torch.testing.assert_close(a.pooled_output, b.pooler_output, atol=1e-5, rtol=0)
    else:
        torch.testing.assert_close(a, b.logits, atol=1e-5, rtol=0)
