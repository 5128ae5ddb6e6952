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

Capture hooks the encoder's layers of any bertkit model (the default forward is untouched: the explicit
attention probabilities are computed only for mapped layers, and only while a Capture is attached).
The teacher's intermediates are computed once per training window before training (teacher_intermediates, the
first teacher's when there are several) and carried in the features, compact: fp16, real tokens only. The cost
per window of n real tokens is, for the M mapped layers, M * n * Ht * 2 bytes for hidden states and
M * nh * n² * 2 bytes for attention (e.g. 3 layers, n = 64, Ht = 384, nh = 12: 147 KB + 295 KB), held in memory
for the whole run.
Limits: not with gradient checkpointing (its recomputation re-runs the hooks); the projection is not in the
resumable checkpoint (a resumed run starts it afresh) and, under DDP, refused (its gradients are not averaged).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertkit.engine import to_device
from bertkit.model.attention import attention_probs
from bertkit.model.bert import Layer, every_position
from bertkit.model.padding import pad
from bertkit.tasks.base import Feature, Task


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


def encoder_layers(model: nn.Module) -> list[Layer]:
    layers = [m for m in model.modules() if isinstance(m, Layer)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no bertkit encoder layers to match")
    return layers


class Capture:
    """While attached to a model, each forward records the hidden state (B, T, H) after every encoder step
    in `hidden` and, for the steps in `attention_steps`, the attention distributions (B, nh, T, T) in `attention`.
    Steps are counted in call order, so ALBERT's shared layers count once per step."""

    def __init__(self, model: nn.Module, hidden_steps: Sequence[int], attention_steps: Sequence[int],
                 training_only: bool = False):  # fmt: skip
        """training_only: record nothing while the model is in eval mode (the student's dev evaluation)."""
        self.hidden_steps, self.attention_steps = set(hidden_steps), set(attention_steps)
        self.training_only = training_only
        self.hidden: dict[int, Tensor] = {}
        self.attention: dict[int, Tensor] = {}
        self._step = 0
        self._packing = None
        self._positions = contextlib.ExitStack()  # the last layer's hidden state at every position
        self._positions.enter_context(every_position(model))
        self._handles = [model.register_forward_pre_hook(lambda module, args: self.reset())]
        for layer in encoder_layers(model):
            self._handles.append(layer.register_forward_pre_hook(self._before))
            self._handles.append(layer.register_forward_hook(self._after))
            # the probabilities come from the layer's own q, k projection: no second qkv GEMM per matched layer
            self._handles.append(layer.attention.qkv.register_forward_hook(
                lambda module, args, qkv, layer=layer: self._qkv(layer, qkv)))  # fmt: skip

    def reset(self) -> None:
        self.hidden, self.attention, self._step = {}, {}, 0

    def _before(self, layer: Layer, args: tuple) -> None:
        self._packing = args[1]

    def _qkv(self, layer: Layer, qkv: Tensor) -> None:
        if self._step in self.attention_steps and (layer.training or not self.training_only):
            att = layer.attention
            self.attention[self._step] = attention_probs(qkv, att.num_heads, att.head_size, self._packing)

    def _after(self, layer: Layer, args: tuple, output: Tensor) -> None:
        packing = args[1]
        if self._step in self.hidden_steps and (layer.training or not self.training_only):
            self.hidden[self._step] = output if packing is None else pad(output, packing)
        self._step += 1

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._positions.close()


def teacher_intermediates(task: Task, teacher: nn.Module, features: Sequence[Feature], pairs: Sequence[tuple[int, int]],
                          hidden: bool, attention: bool, batch_size: int, device: torch.device) -> None:  # fmt: skip
    """Run the teacher once over the features; each gets "t_hidden" (M, n, Ht) and/or "t_attn" (M, nh, n, n),
    fp16, over its n real tokens, for the M mapped teacher layers in the order of pairs."""
    steps = [t for _, t in pairs]
    capture = Capture(teacher, steps if hidden else [], steps if attention else [])
    was_training = teacher.training
    teacher.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(features), batch_size):
                chunk = features[start : start + batch_size]
                batch = to_device(task.collate(chunk), device)
                capture.reset()
                task.forward(teacher, batch)
                real = batch["attention_mask"].bool().cpu()
                for i, f in enumerate(chunk):
                    keep = real[i]
                    if hidden:
                        f["t_hidden"] = torch.stack([capture.hidden[t][i].cpu()[keep] for t in steps]).half()
                    if attention:
                        f["t_attn"] = torch.stack(
                            [capture.attention[t][i].cpu()[:, keep][:, :, keep] for t in steps]
                        ).half()
    finally:
        capture.remove()
        teacher.train(was_training)


def collate_intermediates(features: Sequence[Feature], mask: Tensor) -> dict[str, Tensor]:
    """The features' cached teacher intermediates, scattered to the batch's real positions (mask (B, T)):
    "t_hidden" (M, B, T, Ht) and "t_attn" (M, B, nh, T, T), zeros at padding."""
    out: dict[str, Tensor] = {}
    real = mask.bool()
    b, t = mask.shape
    if all("t_hidden" in f for f in features):
        m, _, width = features[0]["t_hidden"].shape
        h = torch.zeros(m, b, t, width)
        for i, f in enumerate(features):
            h[:, i, real[i]] = f["t_hidden"].float()
        out["t_hidden"] = h
    if all("t_attn" in f for f in features):
        m, heads = features[0]["t_attn"].shape[:2]
        a = torch.zeros(m, b, heads, t, t)
        for i, f in enumerate(features):
            idx = real[i].nonzero().squeeze(1)
            a[:, i, :, idx[:, None], idx[None, :]] = f["t_attn"].float()
        out["t_attn"] = a
    return out


class Matcher:
    """The student's side: its Capture, the projection, the weights; loss(batch) -> the weighted intermediate
    loss of the last forward, and a record of each term per step (for the report)."""

    def __init__(self, student: nn.Module, pairs: Sequence[tuple[int, int]], hidden_weight: float,
                 attention_weight: float, teacher_width: int):  # fmt: skip
        self.pairs = list(pairs)
        steps = [s for s, _ in pairs]
        self.hidden_weight, self.attention_weight = hidden_weight, attention_weight
        self.capture = Capture(student, steps if hidden_weight else [], steps if attention_weight else [],
                               training_only=True)  # fmt: skip
        width = student.config.hidden_size
        self.proj = projection(width, teacher_width) if hidden_weight else None
        self.history: dict[str, list[float]] = {"hidden": [], "attention": []}

    def loss(self, batch: dict[str, Any]) -> Tensor | float:
        mask = batch["attention_mask"]
        steps = [s for s, _ in self.pairs]
        total: Tensor | float = 0.0
        if self.hidden_weight and "t_hidden" in batch:
            term = hidden_loss([self.capture.hidden[s] for s in steps], list(batch["t_hidden"].unbind(0)), mask,
                               self.proj)  # fmt: skip
            self.history["hidden"].append(float(term.detach()))
            total = total + self.hidden_weight * term
        if self.attention_weight and "t_attn" in batch:
            term = attention_loss([self.capture.attention[s] for s in steps], list(batch["t_attn"].unbind(0)), mask)
            self.history["attention"].append(float(term.detach()))
            total = total + self.attention_weight * term
        self.capture.reset()
        return total

    def report(self) -> dict[str, Any]:
        """Mean of each term over the first and the last fifth of the training steps."""
        out: dict[str, Any] = {"layer_map": [list(p) for p in self.pairs], "projection": self.proj is not None}
        for name, values in self.history.items():
            if values:
                k = max(1, len(values) // 5)
                out[f"{name}_loss"] = {"first_steps": sum(values[:k]) / k, "last_steps": sum(values[-k:]) / k,
                                       "steps": len(values)}  # fmt: skip
        return out


__all__ = [
    "Capture",
    "Matcher",
    "attention_loss",
    "check_heads",
    "collate_intermediates",
    "default_layer_map",
    "hidden_loss",
    "parse_layer_map",
    "projection",
    "teacher_intermediates",
]
