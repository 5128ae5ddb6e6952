"""BertConfig: one frozen dataclass for every family; reads and writes Google's bert_config.json and HF's config.json.

The fields are named after Google's bert_config.json. A family (bertkit.model.families) declares its HF
config.json dialect: its model_type, its renamed keys (DistilBERT's `dim` is our `hidden_size`), the extra
fields it uses (ALBERT's embedding_size and layer groups) and the keys it keeps as they are. An unknown
model_type, or a key the family does not know, is an error that names the families bertkit knows.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.model.families import family, known_families
from bertkit.textfile import load_json_object

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_google", "gelu_fast", "relu", "silu", "swish")

# Keys found in real config files that carry nothing for an encoder-only BERT. Anything else unknown is an error.
IGNORED_KEYS = frozenset(
    {
        # Google Chinese / multilingual configs
        "directionality",
        "pooler_fc_size",
        "pooler_num_attention_heads",
        "pooler_num_fc_layers",
        "pooler_size_per_head",
        "pooler_type",
        # transformers bookkeeping
        "model_type",
        "transformers_version",
        "dtype",
        "torch_dtype",
        "use_cache",
        "_name_or_path",
        "gradient_checkpointing",
        "output_past",
        "return_dict",
        "output_attentions",
        "output_hidden_states",
        "torchscript",
        "pruned_heads",
        "tie_word_embeddings",
        "chunk_size_feed_forward",
        "finetuning_task",
        "tokenizer_class",
        "prefix",
        "task_specific_params",
        "bos_token_id",
        "eos_token_id",
        "sep_token_id",
        "decoder_start_token_id",
        "num_labels",
        "label2id",
        "_attn_implementation_autoset",
        "_commit_hash",
        "xla_device",
        "use_return_dict",
        "cross_attention_hidden_size",
        "model_max_length",
        # generation defaults that transformers 3.x/4.x wrote into every config
        "max_length",
        "min_length",
        "do_sample",
        "early_stopping",
        "num_beams",
        "num_beam_groups",
        "diversity_penalty",
        "temperature",
        "top_k",
        "top_p",
        "typical_p",
        "repetition_penalty",
        "length_penalty",
        "no_repeat_ngram_size",
        "encoder_no_repeat_ngram_size",
        "bad_words_ids",
        "num_return_sequences",
        "output_scores",
        "return_dict_in_generate",
        "forced_bos_token_id",
        "forced_eos_token_id",
        "remove_invalid_values",
        "exponential_decay_length_penalty",
        "suppress_tokens",
        "begin_suppress_tokens",
        "tf_legacy_loss",
        "use_bfloat16",
    }
)
# Fields only some families use: a family lists those it reads in its dialect (Dialect.fields).
OPTIONAL_FIELDS = frozenset(
    {"embedding_size", "num_hidden_groups", "inner_group_num", "task_type_vocab_size", "sinusoidal_pos_embds"}
)
# Keys whose presence is fine only at the value an encoder-only BERT has.
REQUIRED_VALUES = {
    "position_embedding_type": "absolute",
    "is_decoder": False,
    "add_cross_attention": False,
    "is_encoder_decoder": False,
}


@dataclass(frozen=True)
class BertConfig:
    """BERT hyperparameters, named after the keys of Google's bert_config.json."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    classifier_dropout: float | None = None
    # Task heads: label names (id order) and the transformers problem_type.
    labels: tuple[str, ...] | None = None
    problem_type: str | None = None
    architectures: tuple[str, ...] = ()
    # The family (bertkit.model.families) and the fields only some families use.
    model_type: str = "bert"
    embedding_size: int | None = None  # factorized embeddings (ALBERT, ELECTRA): E, then a projection to H
    num_hidden_groups: int | None = None  # ALBERT: layers share the weights of this many groups
    inner_group_num: int = 1  # ALBERT: layers per group
    task_type_vocab_size: int = 0  # ERNIE: task-type embeddings (0: none)
    sinusoidal_pos_embds: bool = False  # DistilBERT: fixed sinusoidal position table
    extras: tuple[tuple[str, Any], ...] = ()  # keys the family knows and keeps unchanged (e.g. qa_dropout)

    def __post_init__(self) -> None:
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported; use one of {ACTIVATIONS}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                f"{self.num_attention_heads}"
            )
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "intermediate_size",
            "max_position_embeddings",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.type_vocab_size < 0:
            raise ValueError(f"type_vocab_size must be >= 0, got {self.type_vocab_size}")
        groups = self.num_hidden_groups
        if groups is not None and (groups <= 0 or self.num_hidden_layers % groups):
            raise ValueError(f"num_hidden_groups {groups} must divide num_hidden_layers {self.num_hidden_layers}")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def num_labels(self) -> int:
        return len(self.labels) if self.labels else 2

    def replace(self, **changes: Any) -> BertConfig:
        return dataclasses.replace(self, **changes)

    # ---- reading -------------------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        """Width of the embeddings: embedding_size when factorized, else hidden_size."""
        return self.embedding_size or self.hidden_size

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>", default_type: str = "bert") -> BertConfig:
        """Build from any family's dialect (by model_type; default_type when absent); an unknown key raises."""
        dialect = family(data.get("model_type") or default_type, source).dialect
        data = dialect.prepare(data)
        fields = {f.name for f in dataclasses.fields(cls)} - OPTIONAL_FIELDS - {"extras"} | dialect.fields
        kwargs: dict[str, Any] = dict(dialect.implied)
        extras: dict[str, Any] = {}
        for key, value in data.items():
            key = dialect.renames.get(key, key)
            if key == "id2label":
                order = sorted(value.items(), key=lambda kv: int(kv[0]))
                labels = tuple(str(v) for _, v in order)
                # transformers writes LABEL_0.. when no names were given; keep them as names anyway.
                kwargs["labels"] = labels
            elif key == "architectures":
                kwargs["architectures"] = tuple(value or ())
            elif key in REQUIRED_VALUES:
                if value != REQUIRED_VALUES[key]:
                    raise ValueError(
                        f"{source}: {key}={value!r} is not an encoder-only BERT (bertkit supports "
                        f"{key}={REQUIRED_VALUES[key]!r})"
                    )
            elif key in dialect.kept:
                extras[key] = value
            elif key in fields:
                kwargs[key] = value
            elif key not in IGNORED_KEYS:
                raise ValueError(
                    f"{source}: unknown config key {key!r} for the {dialect.model_type} family. Check its spelling "
                    f"and the model_type; bertkit knows the families {', '.join(known_families())}, and reads "
                    f"Google bert_config.json and Hugging Face config.json keys ({', '.join(sorted(fields))})"
                )
        if "labels" not in kwargs and "num_labels" in data and data["num_labels"] not in (None, 2):
            kwargs["labels"] = tuple(f"LABEL_{i}" for i in range(int(data["num_labels"])))
        if kwargs.get("labels") is not None:
            kwargs["labels"] = tuple(kwargs["labels"])
        kwargs["model_type"] = dialect.model_type
        kwargs["extras"] = tuple(sorted(extras.items()))
        try:
            config = cls(**kwargs)
            dialect.check(config)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from err
        return config

    @classmethod
    def from_json(cls, path: str | Path) -> BertConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"config file {path} does not exist; a model folder needs config.json "
                "(Hugging Face) or bert_config.json (Google)"
            )
        data = load_json_object(
            path, "a JSON object of BERT hyperparameters; restore the file from the original model", "config file"
        )
        # Google's ALBERT ships albert_config.json, without a model_type
        return cls.from_dict(data, source=str(path), default_type="albert" if path.name == "albert_config.json" else "bert")

    # ---- writing -------------------------------------------------------------------------------------
    def to_google_dict(self) -> dict[str, Any]:
        """Google's bert_config.json: the 11 classic keys."""
        keys = (
            "attention_probs_dropout_prob",
            "hidden_act",
            "hidden_dropout_prob",
            "hidden_size",
            "initializer_range",
            "intermediate_size",
            "max_position_embeddings",
            "num_attention_heads",
            "num_hidden_layers",
            "type_vocab_size",
            "vocab_size",
        )
        return {k: getattr(self, k) for k in keys}

    def to_hf_dict(self, architecture: str | None = None) -> dict[str, Any]:
        """Hugging Face config.json that transformers' AutoConfig reads unchanged (in the family's dialect)."""
        dialect = family(self.model_type).dialect
        data = self.to_google_dict()
        data.update(
            model_type=self.model_type,
            layer_norm_eps=self.layer_norm_eps,
            pad_token_id=self.pad_token_id,
            position_embedding_type="absolute",
            classifier_dropout=self.classifier_dropout,
        )
        data.update({k: getattr(self, k) for k in sorted(dialect.fields) if getattr(self, k) is not None})
        data.update(dict(self.extras))
        data = {dialect.written.get(k, k): v for k, v in data.items() if k not in dialect.not_written}
        archs = [architecture] if architecture else list(self.architectures)
        if archs:
            data["architectures"] = archs
        if self.labels is not None:
            data["id2label"] = {str(i): name for i, name in enumerate(self.labels)}
            data["label2id"] = {name: i for i, name in enumerate(self.labels)}
        if self.problem_type is not None:
            data["problem_type"] = self.problem_type
        return dict(sorted(data.items()))

    def save_json(self, path: str | Path, architecture: str | None = None) -> None:
        Path(path).write_text(
            json.dumps(self.to_hf_dict(architecture), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
