"""`bertkit convert`: the Google TF fixture becomes a folder that transformers loads and that gives the reference."""

from __future__ import annotations

import json

import pytest
import torch

from bertkit.cli.main import main
from bertkit.weights.convert import guess_casing


@pytest.mark.parametrize("src", ["tiny-bert-tf", "tiny-bert-tf-with-tf-adam", "tiny-bert-hf-legacy-names"])
def test_convert_to_hf_folder_that_transformers_loads(tmp_path, fixtures_dir, expected, src, capsys):
    transformers = pytest.importorskip("transformers")
    dst = tmp_path / "out"
    assert main(["convert", str(fixtures_dir / src), str(dst)]) == 0
    assert "Loaded BertForPreTraining" in capsys.readouterr().out
    assert {p.name for p in dst.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "tokenizer_config.json",
    }
    model, info = transformers.BertForPreTraining.from_pretrained(dst, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    model = model.double().eval()
    for case in expected["cases"]:
        ids, types, mask = (torch.tensor(case[k]) for k in ("input_ids", "token_type_ids", "attention_mask"))
        with torch.no_grad():
            out = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
        ref = case["float64"]
        assert (
            out.seq_relationship_logits - torch.tensor(ref["nsp_logits"], dtype=torch.float64)
        ).abs().max() < 1e-9
        positions = torch.tensor(case["mlm_positions"])
        mlm = out.prediction_logits[:, positions]
        valid = mask[:, positions].bool()
        assert (mlm - torch.tensor(ref["mlm_logits"], dtype=torch.float64))[valid].abs().max() < 1e-9
    tok = transformers.AutoTokenizer.from_pretrained(dst)
    assert tok.do_lower_case is True
    assert tok("Hello world")["input_ids"][0] == 6  # the tiny vocab's [CLS] is 6, not BERT-base's 101


def test_convert_refuses_unknown_architecture(tmp_path, fixtures_dir, capsys):
    assert (
        main(["convert", str(fixtures_dir / "tiny-bert-tf"), str(tmp_path / "o"), "--architecture", "Nope"])
        == 2
    )
    assert "unknown architecture 'Nope'" in capsys.readouterr().err


def test_convert_missing_source_is_a_clear_error(tmp_path, capsys):
    assert main(["convert", str(tmp_path), str(tmp_path / "o")]) == 2
    assert "not a BERT model folder" in capsys.readouterr().err


def test_casing_from_google_folder_names(tmp_path, fixtures_dir):
    assert guess_casing("cased_L-12_H-768_A-12") is False
    assert guess_casing("uncased_L-12_H-768_A-12") is True
    assert guess_casing("chinese_L-12_H-768_A-12") is True
    dst = tmp_path / "cased"
    assert main(["convert", str(fixtures_dir / "tiny-bert-tf"), str(dst), "--cased"]) == 0
    assert json.loads((dst / "tokenizer_config.json").read_text())["do_lower_case"] is False
