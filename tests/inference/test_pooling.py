"""Pooling formulas against hand-written numpy, layer checks, and the saved choice (features.json / 1_Pooling)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bertkit.inference.pooling import (
    FeatureSettings,
    Pooling,
    pool,
    pooled_dim,
    read_feature_settings,
    resolve_layers,
    write_feature_settings,
)
from bertkit.model.bert import EncoderOutput

B, T, H, L = 3, 5, 4, 3
LENGTHS = [5, 2, 3]


@pytest.fixture()
def output() -> tuple[EncoderOutput, torch.Tensor, np.ndarray]:
    gen = torch.Generator().manual_seed(0)
    states = tuple(torch.randn(B, T, H, generator=gen) for _ in range(L + 1))  # embeddings + 3 layers
    mask = (torch.arange(T) < torch.tensor(LENGTHS)[:, None]).long()
    pooled = torch.randn(B, H, generator=gen)
    return EncoderOutput(states[-1], pooled, states), mask, np.stack([s.numpy() for s in states])


def _rows(states: np.ndarray, layer: int) -> list[np.ndarray]:
    return [states[layer, b, : LENGTHS[b]] for b in range(B)]


def test_pooling_formulas_match_numpy(output):
    out, mask, states = output
    last = _rows(states, -1)
    expected = {
        Pooling.CLS: np.stack([r[0] for r in last]),
        Pooling.MEAN: np.stack([r.mean(0) for r in last]),
        Pooling.MAX: np.stack([r.max(0) for r in last]),
        Pooling.MEAN_MAX: np.stack([np.concatenate([r.mean(0), r.max(0)]) for r in last]),
        Pooling.MEAN_SQRT_LEN: np.stack([r.sum(0) / np.sqrt(len(r)) for r in last]),
        Pooling.FIRST_LAST_AVG: np.stack(
            [((a + b) / 2).mean(0) for a, b in zip(_rows(states, 1), last, strict=True)]
        ),
        Pooling.LAST_N_CONCAT: np.stack(
            [np.concatenate([_rows(states, k)[b].mean(0) for k in (-3, -2, -1)]) for b in range(B)]
        ),
        Pooling.POOLER: out.pooled_output.numpy(),
    }
    for pooling, want in expected.items():
        layers = resolve_layers(pooling, (-3, -2, -1) if pooling is Pooling.LAST_N_CONCAT else None, L)
        got = pool(out, mask, pooling, layers).numpy()
        assert got.shape == (B, pooled_dim(pooling, layers, H)), pooling
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=str(pooling))


def test_chosen_layers_are_concatenated_in_order(output):
    out, mask, states = output
    got = pool(out, mask, Pooling.CLS, (0, -1)).numpy()
    np.testing.assert_allclose(got, np.concatenate([states[0, :, 0], states[-1, :, 0]], -1), rtol=1e-6)


def test_layer_checks():
    assert resolve_layers(Pooling.LAST_N_CONCAT, None, 6) == (-4, -3, -2, -1)
    assert resolve_layers(Pooling.FIRST_LAST_AVG, None, 6) == (1, -1)
    assert resolve_layers(Pooling.MEAN, [], 6) == (-1,)
    with pytest.raises(ValueError, match="layer 7 does not exist"):
        resolve_layers(Pooling.MEAN, [7], 6)
    with pytest.raises(ValueError, match="same layer twice"):
        resolve_layers(Pooling.MEAN, [6, -1], 6)
    with pytest.raises(ValueError, match="first_last_avg"):
        resolve_layers(Pooling.FIRST_LAST_AVG, [-1, -2], 6)
    with pytest.raises(ValueError, match="unknown pooling 'avg'"):
        Pooling.parse("avg")
    assert Pooling.parse("MEAN-MAX") is Pooling.MEAN_MAX


def test_sentence_transformers_pooling_files(tmp_path):
    """Both spellings of 1_Pooling/config.json (legacy booleans, ST >= 5 pooling_mode) and modules.json."""
    (tmp_path / "1_Pooling").mkdir()
    legacy = {
        "word_embedding_dimension": 4,
        "pooling_mode_cls_token": True,
        "pooling_mode_mean_tokens": False,
    }
    (tmp_path / "1_Pooling/config.json").write_text(json.dumps(legacy))
    assert read_feature_settings(tmp_path).pooling is Pooling.CLS
    (tmp_path / "1_Pooling/config.json").write_text(json.dumps({"pooling_mode": "mean_sqrt_len_tokens"}))
    assert read_feature_settings(tmp_path).pooling is Pooling.MEAN_SQRT_LEN
    modules = [{"path": "", "type": "sentence_transformers.models.Transformer"},
               {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]  # fmt: skip
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 77}))
    settings = read_feature_settings(tmp_path)
    assert (settings.normalize, settings.max_length) == (True, 77)
    (tmp_path / "1_Pooling/config.json").write_text(json.dumps({"pooling_mode": ["max", "mean"]}))
    with pytest.raises(ValueError, match="no bertkit equivalent"):
        read_feature_settings(tmp_path)


def test_features_json_round_trip_and_wins(tmp_path):
    settings = FeatureSettings(Pooling.LAST_N_CONCAT, (-2, -1), True, 64, "whitening.npz")
    written = write_feature_settings(tmp_path, settings, hidden_size=4)
    assert [p.name for p in written] == ["features.json"]  # not expressible in sentence-transformers files
    assert read_feature_settings(tmp_path) == settings
    (tmp_path / "features.json").write_text(json.dumps({"pooling": "mean", "typo": 1}))
    with pytest.raises(ValueError, match="unknown key"):
        read_feature_settings(tmp_path)


def test_expressible_choice_writes_sentence_transformers_files(tmp_path):
    write_feature_settings(tmp_path, FeatureSettings(Pooling.MAX, (-1,), True, 128), hidden_size=4)
    config = json.loads((tmp_path / "1_Pooling/config.json").read_text())
    assert config["pooling_mode_max_tokens"] and not config["pooling_mode_mean_tokens"]
    assert [m["path"] for m in json.loads((tmp_path / "modules.json").read_text())] == [
        "",
        "1_Pooling",
        "2_Normalize",
    ]
    (tmp_path / "features.json").unlink()
    settings = read_feature_settings(tmp_path)
    assert (settings.pooling, settings.normalize, settings.max_length) == (Pooling.MAX, True, 128)
