"""Sentence and sentence-pair classification: single-label (softmax), multi-label (sigmoid + threshold) and
regression, with optional sliding windows over long documents whose window logits are pooled (mean or max).

Shapes: B batch (windows), T tokens, L labels (1 for regression), W windows of one example.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertkit.data.collate import encoder_inputs
from bertkit.data.examples import TextExample
from bertkit.data.feature_store import feature_column
from bertkit.evaluation.classification import (
    classification_metrics,
    confusion_matrix,
    multilabel_metrics,
    regression_metrics,
)
from bertkit.tasks.base import Batch, Feature, TaskBase, UnknownLabel
from bertkit.tokenization import Tokenizer
from bertkit.weights.load import load_for

logger = logging.getLogger(__name__)

PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")
POOLINGS = ("mean", "max")
_NUMBER = re.compile(r"-?\d+")


def discover_labels(examples: Iterable[TextExample]) -> tuple[str, ...]:
    """Label names in the training data, sorted (numerically when all are integers).

    Example: discover_labels([TextExample("a", label="10"), TextExample("b", label="9")]) -> ("9", "10")
    """
    names: set[str] = set()
    for ex in examples:
        if isinstance(ex.label, tuple):
            names.update(ex.label)
        elif isinstance(ex.label, str):
            names.add(ex.label)
    if names and all(_NUMBER.fullmatch(n) for n in names):
        return tuple(sorted(names, key=int))
    return tuple(sorted(names))


class ClassificationTask(TaskBase):
    """Classify a text or a text pair; the head is BertForSequenceClassification (transformers-compatible).

    labels: class names in id order (None: discovered from the training data by prepare()).
    problem_type: single_label_classification | multi_label_classification | regression.
    window_stride: None truncates long inputs to max_seq_length; an int slides windows that share this many
        tokens over the text (over the second text of a pair) and pools their logits with `pooling`.
    label_separator: splits a multi-label string label ("sports,politics") into names.
    """

    name = "classification"

    def __init__(
        self,
        labels: Sequence[str] | None = None,
        problem_type: str = "single_label_classification",
        main_metric: str | None = None,
        window_stride: int | None = None,
        pooling: str = "mean",
        threshold: float = 0.5,
        label_separator: str = ",",
    ):
        if problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if window_stride is not None and window_stride < 0:
            raise ValueError(f"window_stride must be >= 0, got {window_stride}")
        self.problem_type = problem_type
        self.labels = ("score",) if problem_type == "regression" else (tuple(labels) if labels else None)
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels repeat a name: {self.labels}")
        default_metric = {"regression": "pearson", "multi_label_classification": "f1_micro"}
        self.main_metric = main_metric or default_metric.get(problem_type, "accuracy")
        self.window_stride = window_stride
        self.pooling = pooling
        self.threshold = threshold
        self.label_separator = label_separator
        self._index = {n: i for i, n in enumerate(self.labels or ())}

    # ---- configuration -------------------------------------------------------------------------------
    @property
    def regression(self) -> bool:
        return self.problem_type == "regression"

    @property
    def multi_label(self) -> bool:
        return self.problem_type == "multi_label_classification"

    def prepare(self, train_examples: Sequence[TextExample]) -> ClassificationTask:
        """This task with its label names discovered from the training data when none were given."""
        if self.labels is not None:
            return self
        labels = discover_labels(train_examples)
        if len(labels) < 2 and not self.multi_label:
            raise ValueError(
                f"the training data has {len(labels)} distinct label(s) {labels}; classification needs at "
                "least 2 (for a numeric target use problem_type regression)"
            )
        logger.info("labels discovered from the training data: %s", ", ".join(labels))
        return ClassificationTask(**{**self.to_json(), "labels": labels})

    def build_model(self, model: str, *, from_finetuned: bool = False) -> tuple[nn.Module, Any]:
        if self.labels is None:
            raise ValueError("the task has no label names yet; call prepare(train_examples) or pass labels")
        return load_for(
            model,
            "sequence_classification",
            labels=self.labels,
            problem_type=self.problem_type,
            require_heads=from_finetuned,
        )

    # ---- examples ------------------------------------------------------------------------------------
    def label_names(self, label: Any) -> tuple[str, ...]:
        """A multi-label label (tuple, or separated string) as a tuple of names."""
        if isinstance(label, tuple | list):
            return tuple(str(x).strip() for x in label)
        text = str(label).strip()
        return tuple(p.strip() for p in text.split(self.label_separator) if p.strip()) if text else ()

    def check(self, example: TextExample, labelled: bool = True) -> str | None:
        """Why the example cannot be used (empty text, missing or unknown label), or None."""
        if not isinstance(example.text, str) or not example.text.strip():
            return "the text is empty"
        if example.text_pair is not None and not example.text_pair.strip():
            return "the second text (text_pair) is empty"
        if not labelled:
            return None
        if example.label is None or example.label == "":
            return "no label"
        if self.regression:
            try:
                value = float(example.label)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return f"label {example.label!r} is not a number (this is a regression task)"
            return None if math.isfinite(value) else f"label {example.label!r} is not a finite number"
        if self.labels is None:
            return None
        names = self.label_names(example.label) if self.multi_label else (str(example.label),)
        unknown = [n for n in names if n not in self._index]
        if unknown:
            return UnknownLabel(f"unknown label {unknown[0]!r}; the labels are {', '.join(self.labels)}")
        return None

    def example_from_dict(self, record: Mapping[str, Any], source: str = "") -> TextExample:
        """{"text": ..., "text_pair": ... (optional), "label": ... (optional)} -> TextExample."""
        if not isinstance(record, Mapping):
            raise ValueError(f"{source or 'input'}: expected a JSON object with a 'text' field")
        text = record.get("text")
        if not isinstance(text, str):
            raise ValueError(
                f"{source or 'input'}: field 'text' must be a string (got {type(text).__name__})"
            )
        pair = record.get("text_pair")
        if pair is not None and not isinstance(pair, str):
            raise ValueError(f"{source or 'input'}: field 'text_pair' must be a string or absent")
        label = record.get("label")
        if isinstance(label, list):
            label = tuple(str(x) for x in label)
        elif label is not None and not isinstance(label, str | float):
            label = str(label)
        return TextExample(text, pair, label, source)

    # ---- features ------------------------------------------------------------------------------------
    def _target(self, label: Any) -> int | float | list[float] | None:
        """The training target of a label; None for no label, or one check() would reject (prediction inputs)."""
        if label is None:
            return None
        try:
            if self.regression:
                return float(label)
            if self.multi_label:
                hot = [0.0] * len(self._index)
                for n in self.label_names(label):
                    hot[self._index[n]] = 1.0
                return hot
            return self._index[str(label)]
        except (KeyError, TypeError, ValueError):
            return None

    def features_batch(
        self, examples: Sequence[TextExample], tokenizer: Tokenizer, max_seq_length: int
    ) -> list[list[Feature]]:
        """One tokenizer call for many examples; a list of window features per example."""
        if not examples:
            return []
        texts = [e.text for e in examples]
        has_pair = [e.text_pair is not None for e in examples]
        if any(has_pair) and not all(has_pair):
            return [self.features(e, tokenizer, max_seq_length) for e in examples]
        pairs = [e.text_pair for e in examples] if all(has_pair) else None
        encodings = tokenizer.encode_batch(texts, pairs, max_seq_length, stride=self.window_stride)
        out = []
        for example, enc in zip(examples, encodings, strict=True):
            target = self._target(example.label) if (self.labels and example.label is not None) else None
            windows = enc.windows if self.window_stride is not None else [enc]
            feats = []
            for w in windows:
                feat: Feature = {"input_ids": w.ids, "token_type_ids": w.type_ids}
                if target is not None:
                    feat["label"] = target
                feats.append(feat)
            out.append(feats)
        return out

    def features(self, example: TextExample, tokenizer: Tokenizer, max_seq_length: int) -> list[Feature]:
        return self.features_batch([example], tokenizer, max_seq_length)[0]

    def collate(self, features: Sequence[Feature]) -> Batch:
        batch = encoder_inputs(features)
        if all("label" in f for f in features):
            dtype = torch.long if not (self.regression or self.multi_label) else torch.float32
            batch["labels"] = torch.tensor([f["label"] for f in features], dtype=dtype)
        return batch

    # ---- model ---------------------------------------------------------------------------------------
    def forward(self, model: nn.Module, batch: Batch) -> Tensor:
        """-> logits (B, L)."""
        return model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        logits = outputs.float()
        labels = batch["labels"]
        if self.regression:
            return F.mse_loss(logits.squeeze(-1), labels)
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits, labels)
        return F.cross_entropy(logits, labels)

    # ---- predictions ---------------------------------------------------------------------------------
    def pool(self, outputs: Sequence[Tensor], features: Sequence[Feature], num_examples: int) -> Tensor:
        """Window logits -> one row per example, (num_examples, L), mean or max over each example's windows."""
        logits = (
            torch.cat([o.float() for o in outputs]) if outputs else torch.zeros(0, len(self.labels or ()))
        )
        index = torch.from_numpy(feature_column(features, "example_index").astype(np.int64))
        dim = logits.shape[1]
        out = torch.zeros(num_examples, dim)
        if self.pooling == "mean":
            out.index_add_(0, index, logits)
            counts = torch.bincount(index, minlength=num_examples).clamp(min=1).unsqueeze(1)
            return out / counts
        return out.scatter_reduce_(
            0, index.unsqueeze(1).expand_as(logits), logits, "amax", include_self=False
        )

    def decode(
        self, outputs: Sequence[Tensor], features: Sequence[Feature], examples: Sequence[Any]
    ) -> list[dict]:
        pooled = self.pool(outputs, features, len(examples))
        labels = self.labels or ()
        if self.regression:
            return [{"score": float(v)} for v in pooled[:, 0].tolist()]
        if self.multi_label:
            probs = torch.sigmoid(pooled).tolist()
            return [
                {
                    "labels": [n for n, p in zip(labels, row, strict=True) if p >= self.threshold],
                    "probabilities": dict(zip(labels, row, strict=True)),
                }
                for row in probs
            ]
        probs = torch.softmax(pooled, dim=-1).tolist()
        return [
            {
                "label": labels[max(range(len(row)), key=row.__getitem__)],
                "probabilities": dict(zip(labels, row, strict=True)),
            }
            for row in probs
        ]

    def _truth(self, examples: Sequence[TextExample]) -> np.ndarray:
        """The gold labels as metrics take them: scores (N,) float64 for regression, a (N, L) bool matrix for
        multi-label, label indices (N,) int64 otherwise."""
        if self.regression:
            scores = (float(e.label) for e in examples)  # type: ignore[arg-type]
            return np.fromiter(scores, np.float64, len(examples))
        if self.multi_label:
            truth = np.zeros((len(examples), len(self._index)), dtype=bool)
            for row, e in zip(truth, examples, strict=True):
                row[[self._index[x] for x in self.label_names(e.label)]] = True
            return truth
        return np.fromiter((self._index[str(e.label)] for e in examples), np.int64, len(examples))

    def metrics(self, predictions: Sequence[dict], examples: Sequence[TextExample]) -> dict[str, float]:
        truth = self._truth(examples)
        if self.regression:
            return regression_metrics(truth, [p["score"] for p in predictions])
        if self.multi_label:
            pred = np.zeros_like(truth)
            for row, p in zip(pred, predictions, strict=True):
                row[[self._index[x] for x in p["labels"]]] = True
            return multilabel_metrics(truth, pred)
        y_pred = [self._index[p["label"]] for p in predictions]
        return classification_metrics(truth, y_pred, len(self._index))

    def score(
        self, outputs: Sequence[Tensor], features: Sequence[Feature], examples: Sequence[TextExample]
    ) -> dict[str, float]:
        """metrics(decode(...)) from arrays: a few bytes per example instead of a dict of Python floats (~400
        bytes with its label and probabilities, measured), so a dev pass over millions of examples stays
        small. Same values: the same float32 probabilities, the first of equal maxima, thresholds compared in
        float64. A subclass or instance with metrics or decode of its own is scored through them."""
        base = ClassificationTask
        own = type(self).metrics is not base.metrics or type(self).decode is not base.decode
        if own or "metrics" in vars(self) or "decode" in vars(self):
            return super().score(outputs, features, examples)
        pooled = self.pool(outputs, features, len(examples))
        truth = self._truth(examples)
        if self.regression:
            return regression_metrics(truth, pooled[:, 0].double().numpy())
        if self.multi_label:
            return multilabel_metrics(truth, (torch.sigmoid(pooled).double() >= self.threshold).numpy())
        y_pred = torch.softmax(pooled, dim=-1).argmax(-1).numpy()
        return classification_metrics(truth, y_pred, len(self._index))

    def confusion(self, predictions: Sequence[dict], examples: Sequence[TextExample]) -> np.ndarray | None:
        """(L, L) confusion matrix for single-label tasks, else None."""
        if self.regression or self.multi_label:
            return None
        y_pred = [self._index[p["label"]] for p in predictions]
        return confusion_matrix(self._truth(examples), y_pred, len(self._index))
