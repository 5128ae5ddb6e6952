"""ERNIE 1.0 / 3.0 (HF model_type "ernie", e.g. nghuyong/ernie-3.0-*-zh): BERT under `ernie.`, plus task types.

The one difference: with use_task_id, a task-type embedding table is added to the embeddings (task 0 unless
told otherwise, as transformers does). Heads and their names are BERT's.
"""

from __future__ import annotations

from typing import Any

from bertkit.model.bert import BertModel, Embeddings
from bertkit.model.families import Dialect, Family
from bertkit.model.families.bert import bert_like_rows
from bertkit.model.heads import (
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)

PREFIX = "ernie."


def _task_types(data: dict[str, Any]) -> dict[str, Any]:
    """use_task_id false (transformers' default) means no task-type table, whatever task_type_vocab_size says."""
    if not data.get("use_task_id", False):
        return {**data, "task_type_vocab_size": 0}
    return {**data, "task_type_vocab_size": data.get("task_type_vocab_size", 3)}


ERNIE = Family(
    dialect=Dialect(
        "ernie", fields=frozenset({"task_type_vocab_size"}), kept=frozenset({"use_task_id"}), prepare=_task_types
    ),
    class_prefix="Ernie",
    hf_prefix=PREFIX,
    embeddings=Embeddings,
    encoder_rows=lambda config, pooler: bert_like_rows(config, pooler, PREFIX),
    heads={
        "base": BertModel,
        "pretraining": BertForPreTraining,
        "masked_lm": BertForMaskedLM,
        "sequence_classification": BertForSequenceClassification,
        "token_classification": BertForTokenClassification,
        "question_answering": BertForQuestionAnswering,
        "multiple_choice": BertForMultipleChoice,
    },
    more=(BertForNextSentencePrediction,),
    tied=("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"),
)
