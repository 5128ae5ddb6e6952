"""The model families bertkit knows: a family is one module here plus one line in FAMILIES.

A family declares what differs from BERT and nothing else (STYLE §3b): its config.json dialect, its
embeddings, pooler or not, its weight-name table (the HF prefix `roberta.`, `albert.`, ...), its head classes
by task kind, and its tokenizer kind. The shared encoder (model/bert.py) assembles the parts; `model_type`
is looked at here and in the family modules only. Modules are imported when a family is first asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# model_type -> "module:attribute" of its Family.
FAMILIES = {
    "bert": "bertkit.model.families.bert:BERT",
    "distilbert": "bertkit.model.families.distilbert:DISTILBERT",
    "roberta": "bertkit.model.families.roberta:ROBERTA",
    "xlm-roberta": "bertkit.model.families.roberta:XLM_ROBERTA",
    "electra": "bertkit.model.families.electra:ELECTRA",
    "albert": "bertkit.model.families.albert:ALBERT",
    "ernie": "bertkit.model.families.ernie:ERNIE",
}
# The task heads a family may offer (Family.heads keys).
HEAD_KINDS = (
    "base",
    "pretraining",
    "masked_lm",
    "sequence_classification",
    "token_classification",
    "question_answering",
    "multiple_choice",
    "discriminator",  # ELECTRA's replaced-token detector
)


def _no_check(config: Any) -> None:
    return None


@dataclass(frozen=True)
class Dialect:
    """How a family's config.json differs from BERT's keys."""

    model_type: str
    renames: dict[str, str] = field(default_factory=dict)  # their key -> our field (DistilBERT `dim` -> hidden_size)
    fields: frozenset[str] = frozenset()  # optional BertConfig fields this family uses (embedding_size, ...)
    kept: frozenset[str] = frozenset()  # keys we do not use but keep and write back (qa_dropout, bos_token_id...)
    implied: dict[str, Any] = field(default_factory=dict)  # our fields fixed by the family (type_vocab_size=0)
    not_written: frozenset[str] = frozenset()  # BERT keys this family's config.json does not have
    check: Callable[[Any], None] = _no_check  # raises ValueError for values the family cannot have
    prepare: Callable[[dict], dict] = dict  # the raw config.json dict -> the dict to read (ERNIE's use_task_id)

    @property
    def written(self) -> dict[str, str]:
        return {ours: theirs for theirs, ours in self.renames.items()}


@dataclass(frozen=True)
class Family:
    """The parts a family supplies to the shared encoder and the heads (see the module docstring)."""

    dialect: Dialect
    class_prefix: str  # transformers' class names: "Roberta" -> RobertaForSequenceClassification
    hf_prefix: str  # the encoder's key prefix in a head model's state dict: "roberta."
    embeddings: Callable[[Any], Any]  # BertConfig -> the embeddings module
    encoder_rows: Callable[[Any, bool], list]  # (config, has pooler) -> rows, HF names with hf_prefix
    heads: dict[str, type]  # head kind -> model class
    more: tuple[type, ...] = ()  # other model classes a checkpoint of this family may be (BERT's NSP model)
    pooler: bool = True  # does the encoder have a pooler (BertModel's add_pooling_layer default)
    tied: tuple[str, ...] = ()  # source keys that are tied copies (never read, never written)
    tokenizer: str = "wordpiece"
    # head kind -> (config field or kept key, its default) whose value is the dropout p transformers applies
    # before that head's classifier, where the family differs from BERT's classifier_dropout: DistilBERT's
    # token classifier reads `dropout`, its QA head `qa_dropout` (BERT's QA head has no dropout).
    head_dropout: dict[str, tuple[str, float]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.dialect.model_type

    def architecture(self, bert_name: str) -> str:
        """transformers' class name in this family for a Bert* name: BertForMaskedLM -> ErnieForMaskedLM."""
        return self.class_prefix + bert_name.removeprefix("Bert") if bert_name.startswith("Bert") else bert_name

    def head(self, kind: str) -> type:
        if kind not in self.heads:
            raise ValueError(
                f"the {self.name} family has no {kind} head; it has {', '.join(self.heads)}"
            )
        return self.heads[kind]


def known_families() -> tuple[str, ...]:
    return tuple(FAMILIES)


def family(model_type: str, source: str = "config") -> Family:
    """The Family of a model_type; an unknown one is an error naming those bertkit knows."""
    if model_type not in FAMILIES:
        raise ValueError(
            f"{source}: model_type {model_type!r} is not a family bertkit knows ({', '.join(FAMILIES)})"
        )
    module, attribute = FAMILIES[model_type].split(":")
    return getattr(importlib.import_module(module), attribute)


def family_of(config: Any) -> Family:
    return family(config.model_type)
