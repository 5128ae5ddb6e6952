"""Resolving a model argument: folders, the bundled default's alias, and a clear offline error for hub ids."""

from __future__ import annotations

import pytest

from bertkit.hub import model_folder, resolve_model_path
from bertkit.tokenization import Tokenizer


def test_alias_resolves_to_bundled_minilm(minilm_dir):
    assert resolve_model_path("minilm") == minilm_dir
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == minilm_dir
    assert Tokenizer.from_pretrained("minilm").vocab_size == 30522


def test_hub_id_offline_names_the_fix(monkeypatch, tmp_path):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"not a local folder, and downloading it from the Hugging Face hub"):
        resolve_model_path("some-org/some-bert-that-is-not-cached")


def test_sentence_transformers_layout_is_followed(tmp_path):
    (tmp_path / "0_Transformer").mkdir()
    (tmp_path / "0_Transformer" / "config.json").write_text("{}")
    (tmp_path / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"}]'
    )
    assert model_folder(tmp_path) == tmp_path / "0_Transformer"
