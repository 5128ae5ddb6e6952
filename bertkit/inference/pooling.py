"""Sentence pooling: token vectors of chosen layers -> one vector per text, and where the choice is saved.

Shapes: B batch, T padded length, H hidden, K number of chosen layers, D = K*H (2*K*H for MEAN_MAX).
Layer indices follow `EncoderOutput.hidden_states`: 0 is the embedding output, i the output of layer i,
-1 the last layer (Google's extract_features.py counts the same way for negative indices).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

import torch
from torch import Tensor

from bertkit.model.bert import EncoderOutput
from bertkit.textfile import load_json

logger = logging.getLogger(__name__)

FEATURES_FILE = "features.json"  # bertkit's full choice (pooling, layers, normalize, whitening)
ST_POOLING = "1_Pooling/config.json"  # sentence-transformers / text-embeddings-inference pooling file


class Pooling(str, Enum):
    """How token vectors become one sentence vector."""

    CLS = "cls"  # the [CLS] token's vector
    POOLER = "pooler"  # tanh(dense([CLS])) of the pretrained pooler (what BERT's NSP head reads)
    MEAN = "mean"  # average over real tokens, [CLS] and [SEP] included (as sentence-transformers)
    MAX = "max"  # element-wise max over real tokens
    MEAN_MAX = "mean_max"  # [mean; max] concatenated (bert-as-service REDUCE_MEAN_MAX)
    MEAN_SQRT_LEN = "mean_sqrt_len"  # sum / sqrt(number of tokens) (sentence-transformers)
    FIRST_LAST_AVG = "first_last_avg"  # mean over tokens of (layer 1 + last layer) / 2 (Su et al. 2021)
    LAST_N_CONCAT = (
        "last_n_concat"  # mean over tokens of the last 4 layers concatenated (default layers -4..-1)
    )

    @classmethod
    def parse(cls, value: str | Pooling) -> Pooling:
        if isinstance(value, Pooling):
            return value
        try:
            return cls(value.lower().replace("-", "_"))
        except ValueError:
            names = ", ".join(p.value for p in cls)
            raise ValueError(f"unknown pooling {value!r}; use one of {names}") from None


_DEFAULT_LAYERS = {Pooling.FIRST_LAST_AVG: (1, -1), Pooling.LAST_N_CONCAT: (-4, -3, -2, -1)}


def resolve_layers(pooling: Pooling, layers: Sequence[int] | None, num_layers: int) -> tuple[int, ...]:
    """The hidden-state indices a pooling reads, checked against a model with num_layers layers."""
    if layers is None or len(layers) == 0:
        chosen = _DEFAULT_LAYERS.get(pooling, (-1,))
    else:
        chosen = tuple(int(x) for x in layers)
        if pooling is Pooling.FIRST_LAST_AVG and chosen != (1, -1):
            raise ValueError("pooling first_last_avg always reads layers 1 and -1; leave layers unset")
        if pooling is Pooling.POOLER and chosen != (-1,):
            raise ValueError("pooling pooler reads the last layer's [CLS]; leave layers unset")
    for i in chosen:
        if not -(num_layers + 1) <= i <= num_layers:
            raise ValueError(
                f"layer {i} does not exist: the model has {num_layers} layers (use 0..{num_layers}, "
                f"0 = embeddings, or -1..-{num_layers + 1} counted from the last layer)"
            )
    if len(set(i % (num_layers + 1) for i in chosen)) != len(chosen):
        raise ValueError(f"layers {list(chosen)} name the same layer twice")
    return chosen


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """(B, T, D), (B, T) -> (B, D): mean over positions where mask is 1."""
    m = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * m).sum(1) / m.sum(1).clamp(min=1e-9)


def masked_max(tokens: Tensor, mask: Tensor) -> Tensor:
    """(B, T, D), (B, T) -> (B, D): max over positions where mask is 1."""
    return tokens.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).max(1).values


def pool(output: EncoderOutput, attention_mask: Tensor, pooling: Pooling, layers: tuple[int, ...]) -> Tensor:
    """EncoderOutput + (B, T) mask -> (B, D). `output.hidden_states` must be present unless layers == (-1,)."""
    if pooling is Pooling.POOLER:
        if output.pooled_output is None:
            raise ValueError("pooling pooler needs a model with its pooler layer")
        return output.pooled_output
    if layers == (-1,):
        tokens = output.last_hidden_state
    else:
        assert output.hidden_states is not None, "layers other than -1 need output_hidden_states=True"
        chosen = [output.hidden_states[i] for i in layers]
        tokens = (chosen[0] + chosen[1]) / 2 if pooling is Pooling.FIRST_LAST_AVG else torch.cat(chosen, -1)
    if pooling is Pooling.CLS:
        return tokens[:, 0]
    if pooling in (Pooling.MEAN, Pooling.FIRST_LAST_AVG, Pooling.LAST_N_CONCAT):
        return masked_mean(tokens, attention_mask)
    if pooling is Pooling.MAX:
        return masked_max(tokens, attention_mask)
    if pooling is Pooling.MEAN_MAX:
        return torch.cat([masked_mean(tokens, attention_mask), masked_max(tokens, attention_mask)], -1)
    if pooling is Pooling.MEAN_SQRT_LEN:
        m = attention_mask.unsqueeze(-1).to(tokens.dtype)
        return (tokens * m).sum(1) / m.sum(1).clamp(min=1e-9).sqrt()
    raise AssertionError(f"unhandled pooling {pooling}")


def reads_first_token_only(pooling: Pooling, layers: tuple[int, ...]) -> bool:
    """Whether the pooling reads nothing of the last layer but position 0 ([CLS], or the pooler on it): the encoder
    can then run that layer's out projection and FFN on one row per text (BertModel's first_token_only)."""
    return pooling in (Pooling.CLS, Pooling.POOLER) and layers == (-1,)


def pooled_dim(pooling: Pooling, layers: tuple[int, ...], hidden_size: int) -> int:
    """Length of the sentence vector before whitening."""
    if pooling in (Pooling.POOLER, Pooling.FIRST_LAST_AVG):
        return hidden_size
    width = len(layers) * hidden_size
    return 2 * width if pooling is Pooling.MEAN_MAX else width


# --- the saved choice ------------------------------------------------------------------------------

_ST_MODES = {
    "cls": Pooling.CLS,
    "mean": Pooling.MEAN,
    "max": Pooling.MAX,
    "mean_sqrt_len_tokens": Pooling.MEAN_SQRT_LEN,
}
_ST_LEGACY = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


@dataclass(frozen=True)
class FeatureSettings:
    """What a model folder says about its sentence vectors; None fields fall back to defaults."""

    pooling: Pooling | None = None
    layers: tuple[int, ...] | None = None
    normalize: bool | None = None
    max_length: int | None = None
    whitening: str | None = None  # file name inside the folder
    sources: tuple[str, ...] = field(default=(), compare=False)


def _read_json(path: Path) -> dict | list:
    return load_json(path, "the model folder's settings as JSON; fix or delete the file", "settings file")


def _st_pooling(path: Path) -> Pooling:
    """sentence-transformers' 1_Pooling/config.json (legacy booleans or `pooling_mode`) -> Pooling."""
    config = _read_json(path)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object")
    mode = config.get("pooling_mode")
    if mode is None:
        modes = [m for key, m in _ST_LEGACY.items() if config.get(key)]
        mode = modes[0] if len(modes) == 1 else (modes or ["mean"])
    if isinstance(mode, list):
        mode = mode[0] if len(mode) == 1 else tuple(mode)
    if isinstance(mode, str) and mode in _ST_MODES:
        return _ST_MODES[mode]
    raise ValueError(
        f"{path}: pooling {mode!r} has no bertkit equivalent (supported: {', '.join(_ST_MODES)}); "
        "pass pooling= explicitly (e.g. --pooling mean)"
    )


def read_feature_settings(folder: Path) -> FeatureSettings:
    """The saved choice: bertkit's features.json, else sentence-transformers' modules.json + 1_Pooling."""
    if (folder / FEATURES_FILE).is_file():
        data = _read_json(folder / FEATURES_FILE)
        if not isinstance(data, dict):
            raise ValueError(f"{folder / FEATURES_FILE}: expected a JSON object")
        unknown = set(data) - {"pooling", "layers", "normalize", "max_length", "whitening"}
        if unknown:
            raise ValueError(f"{folder / FEATURES_FILE}: unknown key(s) {sorted(unknown)}")
        return FeatureSettings(
            Pooling.parse(data["pooling"]) if data.get("pooling") else None,
            tuple(data["layers"]) if data.get("layers") else None,
            data.get("normalize"),
            data.get("max_length"),
            data.get("whitening"),
            (str(folder / FEATURES_FILE),),
        )
    pooling = normalize = max_length = None
    sources = []
    modules = folder / "modules.json"
    pooling_file = folder / ST_POOLING
    if modules.is_file():
        entries = _read_json(modules)
        types = [str(m.get("type", "")) for m in entries if isinstance(m, dict)]
        normalize = any(t.endswith("Normalize") for t in types)
        paths = [
            m.get("path")
            for m in entries
            if isinstance(m, dict) and str(m.get("type", "")).endswith("Pooling")
        ]
        if paths:
            pooling_file = folder / paths[0] / "config.json"
        sources.append(str(modules))
    if pooling_file.is_file():
        pooling = _st_pooling(pooling_file)
        sources.append(str(pooling_file))
    st_config = folder / "sentence_bert_config.json"
    if st_config.is_file():
        max_length = _read_json(st_config).get("max_seq_length")
        sources.append(str(st_config))
    return FeatureSettings(pooling, None, normalize, max_length, None, tuple(sources))


def write_feature_settings(folder: Path, settings: FeatureSettings, hidden_size: int) -> list[Path]:
    """Write features.json, and the sentence-transformers files when the choice is one they can express."""
    folder.mkdir(parents=True, exist_ok=True)
    data = asdict(settings)
    data.pop("sources")
    data["pooling"] = settings.pooling.value if settings.pooling else None
    data["layers"] = list(settings.layers) if settings.layers else None
    written = [folder / FEATURES_FILE]
    written[0].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    st_mode = {v: k for k, v in _ST_MODES.items()}.get(settings.pooling)
    if st_mode is None or settings.layers not in (None, (-1,)) or settings.whitening:
        logger.info("pooling %s is bertkit-only: sentence-transformers files not written", settings.pooling)
        return written
    legacy = {key: mode == st_mode for key, mode in _ST_LEGACY.items()}
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / ST_POOLING).write_text(
        json.dumps({"word_embedding_dimension": hidden_size, **legacy}, indent=2) + "\n", encoding="utf-8"
    )
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if settings.normalize:
        modules.append(
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
        (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    extra = [folder / ST_POOLING, folder / "modules.json"]
    if settings.max_length:
        cfg = {"max_seq_length": settings.max_length, "do_lower_case": False}
        (folder / "sentence_bert_config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        extra.append(folder / "sentence_bert_config.json")
    return written + extra
