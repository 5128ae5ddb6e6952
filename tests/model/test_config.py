from __future__ import annotations

import dataclasses
import json

import pytest

from bertkit.model.config import BertConfig


def test_reads_google_and_hf_dialects(fixtures_dir):
    google = BertConfig.from_json(fixtures_dir / "tiny-bert-tf" / "bert_config.json")
    hf = BertConfig.from_json(fixtures_dir / "tiny-bert-hf" / "config.json")
    assert google.replace(architectures=hf.architectures) == hf
    assert hf.hidden_size == 32 and hf.intermediate_size == 37 and hf.vocab_size == 332
    # Google's Chinese/multilingual extra keys are accepted
    extra = BertConfig.from_json(fixtures_dir / "tiny-bert-tf-with-optimizer" / "bert_config.json")
    assert extra.num_hidden_layers == 2


def test_unknown_key_is_an_error_naming_file_and_key(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 32, "num_attention_heads": 4, "hiden_layers": 3}))
    with pytest.raises(ValueError, match=r"config.json.*'hiden_layers'"):
        BertConfig.from_json(path)


def test_decoder_configs_are_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"is_decoder": True}))
    with pytest.raises(ValueError, match="is_decoder"):
        BertConfig.from_json(path)


def test_bad_json_and_missing_file(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        BertConfig.from_json(tmp_path / "config.json")
    (tmp_path / "config.json").write_text('{"hidden_size": 32, "num_hidden_layers"')  # a truncated download
    with pytest.raises(ValueError, match=r"config.json:1: not valid JSON .*restore the file from the original model"):
        BertConfig.from_json(tmp_path / "config.json")
    (tmp_path / "config.json").write_text("[32, 2]")
    with pytest.raises(ValueError, match="config.json: holds a JSON list, not an object; expected a JSON object of BERT"):
        BertConfig.from_json(tmp_path / "config.json")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BertConfig.from_json(tmp_path / "nope.json")


def test_hf_round_trip_keeps_labels(tmp_path):
    cfg = BertConfig(
        hidden_size=32,
        num_attention_heads=4,
        labels=("neg", "pos"),
        problem_type="single_label_classification",
    )
    cfg.save_json(tmp_path / "config.json", architecture="BertForSequenceClassification")
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["id2label"] == {"0": "neg", "1": "pos"} and data["label2id"] == {"neg": 0, "pos": 1}
    back = BertConfig.from_json(tmp_path / "config.json")
    assert back.labels == ("neg", "pos") and back.num_labels == 2
    assert back.architectures == ("BertForSequenceClassification",)


def test_frozen():
    cfg = BertConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hidden_size = 3  # type: ignore[misc]
