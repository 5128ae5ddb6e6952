"""ERNIE 1.0 / 3.0 (HF model_type "ernie", e.g. nghuyong/ernie-3.0-*-zh): BERT under `ernie.`, plus task types.

The one difference: with use_task_id, a task-type embedding table is added to the embeddings (the model's
`task_type_ids`, task 0 when none are given, as transformers does). Everything else is BERT's family
(its embeddings, heads, head names and tied keys), taken from it rather than copied.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bertkit.model.families import Dialect
from bertkit.model.families.bert import BERT, bert_like_rows

PREFIX = "ernie."


def _task_types(data: dict[str, Any]) -> dict[str, Any]:
    """use_task_id false (transformers' default) means no task-type table, whatever task_type_vocab_size says."""
    if not data.get("use_task_id", False):
        return {**data, "task_type_vocab_size": 0}
    return {**data, "task_type_vocab_size": data.get("task_type_vocab_size", 3)}


ERNIE = replace(
    BERT,
    dialect=Dialect(
        "ernie", fields=frozenset({"task_type_vocab_size"}), kept=frozenset({"use_task_id"}), prepare=_task_types
    ),
    class_prefix="Ernie",
    hf_prefix=PREFIX,
    encoder_rows=lambda config, pooler: bert_like_rows(config, pooler, PREFIX),
)
