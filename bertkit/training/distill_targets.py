"""Soft targets for distillation, one small class per task family: what a teacher's outputs become (once, before
training), how they are batched, and the soft loss of a student's outputs against them.

Every soft loss is zero when the student's outputs equal the teacher's, and is a KL divergence at temperature T
scaled by T² (Hinton et al. 2015) except regression (mean squared error to the teacher's value):
- single-label classification and multiple choice: KL(softmax(t/T) || softmax(s/T)) per example;
- multi-label: per label, the Bernoulli KL between sigmoid(t/T) and sigmoid(s/T), averaged over labels;
- tagging: KL per labelled unit (first piece of a word), averaged over units; for a CRF head the emissions;
- QA: the start and the end distributions over the window's positions, averaged.

Shapes: B batch, L labels, U labelled units of a window, T tokens of a window, C choices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from bertkit.tasks.base import Batch, Feature


class SoftTargets(Protocol):
    def probabilities(self, outputs: Any, temperature: float) -> Tensor:
        """One batch of teacher outputs -> its soft targets, batch first."""
        ...

    def rows(self, soft: Tensor, features: Sequence[Feature]) -> list[Tensor]:
        """Batch soft targets -> one tensor per feature, cut to the feature's own size."""
        ...

    def collate(self, rows: Sequence[Tensor]) -> Tensor: ...

    def loss(self, outputs: Any, targets: Tensor, batch: Batch, temperature: float) -> Tensor: ...


def _kl(p: Tensor, log_q: Tensor, dim: int = -1) -> Tensor:
    """sum p (log p - log q) over dim; 0 log 0 = 0, so masked positions (p = 0) add nothing."""
    return (torch.xlogy(p, p) - p * log_q).sum(dim)


def _pad(rows: Sequence[Tensor]) -> Tensor:
    """Right-pad rows along their last dimension with zeros -> (B, ..., longest)."""
    width = max(r.shape[-1] for r in rows)
    return torch.stack([F.pad(r, (0, width - r.shape[-1])) for r in rows])


class ClassificationTargets:
    """Softmax (single-label), sigmoid (multi-label) probabilities, or the value (regression); (B, L)."""

    def __init__(self, problem_type: str):
        self.problem_type = problem_type

    def probabilities(self, outputs: Tensor, temperature: float) -> Tensor:
        logits = outputs.float()
        if self.problem_type == "regression":
            return logits
        if self.problem_type == "multi_label_classification":
            return torch.sigmoid(logits / temperature)
        return torch.softmax(logits / temperature, dim=-1)

    def rows(self, soft: Tensor, features: Sequence[Feature]) -> list[Tensor]:
        return list(soft.unbind(0))

    def collate(self, rows: Sequence[Tensor]) -> Tensor:
        return torch.stack(list(rows))

    def loss(self, outputs: Tensor, targets: Tensor, batch: Batch, temperature: float) -> Tensor:
        logits = outputs.float()
        if self.problem_type == "regression":
            return F.mse_loss(logits, targets)
        scaled = logits / temperature
        if self.problem_type == "multi_label_classification":
            bce = F.binary_cross_entropy_with_logits(scaled, targets, reduction="none")
            entropy = -(torch.xlogy(targets, targets) + torch.xlogy(1 - targets, 1 - targets))
            return (bce - entropy).mean() * temperature**2
        return _kl(targets, F.log_softmax(scaled, dim=-1)).mean() * temperature**2


class TaggingTargets:
    """Softmax of the label scores at each labelled unit (logits, or a CRF's emissions); (B, U, L)."""

    def probabilities(self, outputs: Any, temperature: float) -> Tensor:
        return torch.softmax(outputs.scores.float() / temperature, dim=-1)

    def rows(self, soft: Tensor, features: Sequence[Feature]) -> list[Tensor]:
        return [soft[i, : len(f["label_positions"])] for i, f in enumerate(features)]

    def collate(self, rows: Sequence[Tensor]) -> Tensor:
        return _pad([r.transpose(0, 1) for r in rows]).transpose(1, 2)  # pad U, keep L

    def loss(self, outputs: Any, targets: Tensor, batch: Batch, temperature: float) -> Tensor:
        mask = batch["label_mask"]
        if not bool(mask.any()):
            return outputs.scores.sum() * 0.0
        log_q = F.log_softmax(outputs.scores.float() / temperature, dim=-1)
        return _kl(targets[mask], log_q[mask]).mean() * temperature**2


class SpanTargets:
    """Start and end distributions over each window's positions; (B, 2, T)."""

    def probabilities(self, outputs: Any, temperature: float) -> Tensor:
        start, end = outputs.start_logits.float(), outputs.end_logits.float()
        return torch.stack([torch.softmax(start / temperature, -1), torch.softmax(end / temperature, -1)], 1)

    def rows(self, soft: Tensor, features: Sequence[Feature]) -> list[Tensor]:
        return [soft[i, :, : len(f["input_ids"])] for i, f in enumerate(features)]

    def collate(self, rows: Sequence[Tensor]) -> Tensor:
        return _pad(rows)

    def loss(self, outputs: Any, targets: Tensor, batch: Batch, temperature: float) -> Tensor:
        start = F.log_softmax(outputs.start_logits.float() / temperature, -1)
        end = F.log_softmax(outputs.end_logits.float() / temperature, -1)
        return (_kl(targets[:, 0], start) + _kl(targets[:, 1], end)).mean() / 2 * temperature**2


class ChoiceTargets:
    """Softmax over each example's choices; (B, C), padded choices 0."""

    def probabilities(self, outputs: Tensor, temperature: float) -> Tensor:
        return torch.softmax(outputs.float() / temperature, dim=-1)

    def rows(self, soft: Tensor, features: Sequence[Feature]) -> list[Tensor]:
        return [soft[i, : len(f["input_ids"])] for i, f in enumerate(features)]

    def collate(self, rows: Sequence[Tensor]) -> Tensor:
        return _pad(rows)

    def loss(self, outputs: Tensor, targets: Tensor, batch: Batch, temperature: float) -> Tensor:
        return _kl(targets, F.log_softmax(outputs.float() / temperature, dim=-1)).mean() * temperature**2


def soft_targets_for(task: Any) -> SoftTargets:
    """The soft-target family of a task (by its registry name)."""
    if task.name == "classification":
        return ClassificationTargets(task.problem_type)
    if task.name == "tagging":
        return TaggingTargets()
    if task.name == "qa":
        return SpanTargets()
    if task.name == "multiple_choice":
        return ChoiceTargets()
    raise ValueError(
        f"distillation supports the classification, tagging, qa and multiple_choice families, not {task.name!r}"
    )


def mean_outputs(per_model: Sequence[Any]) -> Any:
    """The element-wise mean of several models' outputs for one batch (tensors, or tuples of tensors)."""
    first = per_model[0]
    if isinstance(first, Tensor):
        return torch.stack([o.float() for o in per_model]).mean(0)
    if first is None:
        return None
    parts = [mean_outputs([o[i] for o in per_model]) for i in range(len(first))]
    return type(first)(*parts) if hasattr(first, "_fields") else type(first)(parts)
