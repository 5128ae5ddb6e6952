"""Intermediate matching for distillation (TinyBERT / MiniLM style): the layer map and the two losses.

Shapes: B batch, T padded length, H student width, Ht teacher width, nh heads.

- Layer map: student layer i (0-based, counting transformer layers, not the embeddings) -> teacher layer j.
  The default is TinyBERT's uniform map, i -> (i + 1) * T // S - 1 for S student and T teacher layers, so the
  student's last layer is matched to the teacher's last layer.
- Hidden states: mean squared error between the student's hidden state (through a learned nn.Linear H -> Ht when
  the widths differ; that projection trains with the student and is not part of the student's folder) and the
  teacher's, over real (non-padding) tokens only: summed over the width, averaged over tokens and mapped layers.
- Attention: MiniLM's KL(teacher || student) between the attention distributions (model.attention.attention_probs)
  of mapped layers, per head and real query token over the real keys, averaged over heads, real queries and
  mapped layers. KL on the distributions (MiniLM) rather than MSE on the scores (TinyBERT): the distributions
  are what the teacher's attention means, and KL is invariant to the per-row shift of the scores that softmax
  ignores. Teacher and student need the same number of heads.

Not done yet: wiring these into DistillTask (teacher intermediates cached once per example, compact fp16 on the
real tokens; student intermediates captured during the training forward; CLI flags --hidden-weight,
--attention-weight, --layer-map).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def default_layer_map(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """TinyBERT's uniform map: [(i, (i + 1) * T // S - 1)]. Example: (3, 6) -> [(0, 1), (1, 3), (2, 5)]."""
    if not 0 < student_layers <= teacher_layers:
        raise ValueError(
            f"a uniform --layer-map needs 1 <= student layers <= teacher layers, got {student_layers} and "
            f"{teacher_layers}; pass --layer-map explicitly"
        )
    return [(i, (i + 1) * teacher_layers // student_layers - 1) for i in range(student_layers)]


def parse_layer_map(text: str | None, student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """'0:1,1:3,2:5' (student:teacher, 0-based layers) -> [(0, 1), (1, 3), (2, 5)]; None or '' -> the default."""
    if not text:
        return default_layer_map(student_layers, teacher_layers)
    pairs = []
    for part in text.split(","):
        try:
            s, t = (int(x) for x in part.split(":"))
        except ValueError:
            raise ValueError(
                f"--layer-map {text!r}: {part!r} is not student:teacher, e.g. --layer-map 0:1,1:3,2:5"
            ) from None
        if not 0 <= s < student_layers:
            raise ValueError(f"--layer-map {text!r}: student layer {s} is out of range 0..{student_layers - 1}")
        if not 0 <= t < teacher_layers:
            raise ValueError(f"--layer-map {text!r}: teacher layer {t} is out of range 0..{teacher_layers - 1}")
        pairs.append((s, t))
    return pairs


def check_heads(student_heads: int, teacher_heads: int) -> None:
    """Attention matching compares distributions head by head: the head counts must agree."""
    if student_heads != teacher_heads:
        raise ValueError(
            f"--attention-weight needs the student and the teacher to have the same number of attention heads "
            f"(student {student_heads}, teacher {teacher_heads}); use --attention-weight 0 or a student with "
            f"{teacher_heads} heads"
        )


def projection(student_width: int, teacher_width: int) -> nn.Linear | None:
    """The learned H -> Ht map of the hidden-state loss; None when the widths agree (no projection)."""
    return None if student_width == teacher_width else nn.Linear(student_width, teacher_width)


def hidden_loss(student: Sequence[Tensor], teacher: Sequence[Tensor], mask: Tensor,
                proj: nn.Module | None = None) -> Tensor:  # fmt: skip
    """Mapped layers' hidden states, student (B, T, H) and teacher (B, T, Ht), mask (B, T) -> scalar.

    mean over real tokens and layers of sum_h (proj(s) - t)^2 / Ht: padded tokens contribute nothing.
    """
    real = mask.bool()
    losses = []
    for s, t in zip(student, teacher, strict=True):
        s = s[real].float()
        s = proj(s) if proj is not None else s
        losses.append(F.mse_loss(s, t[real].float()))
    return torch.stack(losses).mean()


def attention_loss(student: Sequence[Tensor], teacher: Sequence[Tensor], mask: Tensor) -> Tensor:
    """Mapped layers' attention distributions (B, nh, T, T) each, mask (B, T) -> scalar.

    KL(teacher || student) per head and real query (padded keys have probability 0 in both and add nothing),
    averaged over heads, real queries and layers.
    """
    real = mask.bool()
    losses = []
    for s, t in zip(student, teacher, strict=True):
        t = t.float()
        log_s = torch.log(s.float().clamp_min(1e-12))
        kl = (torch.xlogy(t, t) - t * log_s).sum(-1)  # (B, nh, T)
        losses.append(kl.transpose(1, 2)[real].mean())  # (N real queries, nh) -> mean
    return torch.stack(losses).mean()


__all__ = ["attention_loss", "check_heads", "default_layer_map", "hidden_loss", "parse_layer_map", "projection"]
