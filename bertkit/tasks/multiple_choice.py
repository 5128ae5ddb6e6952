"""Multiple choice (SWAG, Social IQa, C3, generic JSONL): each (context, question + choice) pair is encoded,
one logit per choice, softmax over the choices. Any number of choices, also mixed within a batch.

A batch is (B, C, T) with C the most choices of any example in it; an example with fewer choices is padded
with "[CLS] [SEP]" rows whose logits are masked out, so they never win and take no probability.
BertForMultipleChoice flattens (B, C, T) to (B·C, T) around the encoder and back.

Shapes: B batch, C choices, T tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertkit.data.collate import pad_sequences
from bertkit.data.examples import ChoiceExample
from bertkit.tasks.base import Batch, Feature, TaskBase
from bertkit.tokenization import Tokenizer
from bertkit.weights.load import load_for


def second_text(example: ChoiceExample, choice: str) -> str:
    """The text paired with the context for one choice: ``question + " " + choice`` (just the choice without one).

    Example: ``second_text(ChoiceExample("ctx", ("home",), question="Where?"), "home") -> "Where? home"``
    """
    return f"{example.question} {choice}" if example.question else choice


class MultipleChoiceTask(TaskBase):
    """Pick one of N choices with BertForMultipleChoice (transformers-compatible head)."""

    name = "multiple_choice"
    main_metric = "accuracy"

    def build_model(self, model: str, *, from_finetuned: bool = False) -> tuple[nn.Module, Any]:
        return load_for(model, "multiple_choice", require_heads=from_finetuned)

    # ---- examples ------------------------------------------------------------------------------------
    def check(self, example: ChoiceExample, labelled: bool = True) -> str | None:
        """Why the example cannot be used, or None."""
        if len(example.choices) < 2:
            return f"{len(example.choices)} choice(s); multiple choice needs at least 2"
        if not example.context.strip() and not example.question.strip():
            return "the context and the question are both empty"
        empty = [i for i, c in enumerate(example.choices) if not c.strip()]
        if empty:
            return f"choice {empty[0]} is empty"
        if labelled and example.label is None:
            return "no label"
        if example.label is not None and not 0 <= example.label < len(example.choices):
            return f"label {example.label} is outside 0..{len(example.choices) - 1}"
        return None

    def example_from_dict(self, record: Mapping[str, Any], source: str = "") -> ChoiceExample:
        """{"context", "question" (optional), "choices": [...], "label" (optional: index or choice text)}."""
        where = source or "input"
        if not isinstance(record, Mapping):
            raise ValueError(f"{where}: expected a JSON object with 'context' and 'choices'")
        context, question, choices = record.get("context"), record.get("question", ""), record.get("choices")
        if not isinstance(context, str):
            raise ValueError(f"{where}: field 'context' must be a string")
        if not isinstance(question, str):
            raise ValueError(f"{where}: field 'question' must be a string or absent")
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise ValueError(f"{where}: field 'choices' must be a list of strings")
        label = record.get("label")
        if isinstance(label, str):
            if label not in choices:
                raise ValueError(f"{where}: label {label!r} is not one of the choices")
            label = choices.index(label)
        elif label is not None and (isinstance(label, bool) or not isinstance(label, int)):
            raise ValueError(f"{where}: label must be a 0-based choice index or the text of a choice")
        return ChoiceExample(
            context=context, choices=tuple(choices), question=question, label=label, source=where
        )

    # ---- features ------------------------------------------------------------------------------------
    def features_batch(
        self, examples: Sequence[ChoiceExample], tokenizer: Tokenizer, max_seq_length: int
    ) -> list[list[Feature]]:
        """One tokenizer call for every (context, choice) pair; one feature (all choices) per example."""
        firsts = [e.context for e in examples for _ in e.choices]
        seconds = [second_text(e, c) for e in examples for c in e.choices]
        encodings = tokenizer.encode_batch(firsts, seconds, max_seq_length) if firsts else []
        out, k = [], 0
        for e in examples:
            encs = encodings[k : k + len(e.choices)]
            k += len(e.choices)
            feat: Feature = {"input_ids": [x.ids for x in encs], "token_type_ids": [x.type_ids for x in encs]}
            if e.label is not None:
                feat["label"] = e.label
            out.append([feat])
        return out

    def features(self, example: ChoiceExample, tokenizer: Tokenizer, max_seq_length: int) -> list[Feature]:
        return self.features_batch([example], tokenizer, max_seq_length)[0]

    def collate(self, features: Sequence[Feature]) -> Batch:
        """-> input_ids, token_type_ids, attention_mask (B, C, T); choice_mask (B, C); labels (B,) when all have one."""
        width = max(len(f["input_ids"]) for f in features)

        def filler(f: Feature) -> list[list[int]]:  # "[CLS] [SEP]" of the feature's own vocab, masked out
            first = f["input_ids"][0]
            return [[first[0], first[-1]]] * (width - len(f["input_ids"]))

        ids = [row for f in features for row in f["input_ids"] + filler(f)]
        types = [
            row for f in features for row in f["token_type_ids"] + [[0, 0]] * (width - len(f["input_ids"]))
        ]
        input_ids = pad_sequences(ids)
        lengths = torch.tensor([len(r) for r in ids])
        attention_mask = (torch.arange(input_ids.shape[1]) < lengths[:, None]).long()
        shape = (len(features), width, input_ids.shape[1])
        batch = {
            "input_ids": input_ids.view(shape),
            "token_type_ids": pad_sequences(types).view(shape),
            "attention_mask": attention_mask.view(shape),
            "choice_mask": torch.tensor([[i < len(f["input_ids"]) for i in range(width)] for f in features]),
        }
        if all("label" in f for f in features):
            batch["labels"] = torch.tensor([f["label"] for f in features])
        return batch

    # ---- model ---------------------------------------------------------------------------------------
    def forward(self, model: nn.Module, batch: Batch) -> Tensor:
        """-> logits (B, C); padded choices get the lowest value."""
        logits = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        return logits.masked_fill(~batch["choice_mask"], torch.finfo(logits.dtype).min)

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(outputs.float(), batch["labels"])

    # ---- predictions ---------------------------------------------------------------------------------
    def decode(
        self, outputs: Sequence[Tensor], features: Sequence[Feature], examples: Sequence[Any]
    ) -> list[dict]:
        """One prediction per example: the chosen index, its text and the probability of every choice."""
        preds: list[dict | None] = [None] * len(examples)
        k = 0
        for logits in outputs:
            for row in torch.softmax(logits.float(), dim=-1).tolist():
                i = features[k]["example_index"]
                k += 1
                example = examples[i]
                probs = row[: len(example.choices)]
                best = max(range(len(probs)), key=probs.__getitem__)
                preds[i] = {"label": best, "choice": example.choices[best], "probabilities": probs}
        missing = [i for i, p in enumerate(preds) if p is None]
        if missing:
            raise ValueError(f"no model output for example {missing[0]} ({len(missing)} in all)")
        return preds  # type: ignore[return-value]

    def metrics(self, predictions: Sequence[dict], examples: Sequence[ChoiceExample]) -> dict[str, float]:
        """accuracy over the labelled examples (0-1)."""
        pairs = [
            (p["label"], e.label) for p, e in zip(predictions, examples, strict=True) if e.label is not None
        ]
        if not pairs:
            raise ValueError("no labelled examples to score")
        return {"accuracy": sum(p == g for p, g in pairs) / len(pairs), "total": len(pairs)}
