"""AdamW with BERT's parameter groups, Google's uncorrected variant, and learning-rate schedules as pure functions.

The schedule is not hidden inside the optimizer: the loop sets each group's lr to lr_at(step) before a step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn


def param_groups(
    model: nn.Module, weight_decay: float, lr_scales: Mapping[str, float] | None = None
) -> list[dict]:
    """Two groups: matrices (decayed) and biases / LayerNorm weights (never decayed), as in BERT.

    Tensors with dim() >= 2 are exactly the weight matrices and embeddings: bias and LayerNorm
    parameters are 1-D (nanoGPT's rule, equal to BERT's name-based exclusion).
    lr_scales (the task's TaskBase.lr_scales(), e.g. {"crf.": 100.0}: parameter-name prefix -> factor) puts
    those parameters in groups of their own with "lr_scale", which set_lr multiplies in (a CRF learns faster
    than BERT).
    """
    scales: dict[str, float] = dict(lr_scales or {})
    groups: dict[tuple[float, bool], list] = {(1.0, True): [], (1.0, False): []}
    for name, param in model.named_parameters():
        if param.requires_grad:
            scale = next((s for prefix, s in scales.items() if name.startswith(prefix)), 1.0)
            groups.setdefault((scale, param.dim() >= 2), []).append(param)
    return [
        {
            "params": params,
            "weight_decay": weight_decay if decay else 0.0,
            **({"lr_scale": s} if s != 1.0 else {}),
        }
        for (s, decay), params in groups.items()
        if params or s == 1.0
    ]


class GoogleAdamW(torch.optim.Optimizer):
    """Google BERT's AdamWeightDecayOptimizer: Adam moments without bias correction, decoupled weight decay.

    update = m / (sqrt(v) + eps) + weight_decay * param;  param -= lr * update
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                update = m / (v.sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                p.add_(update, alpha=-group["lr"])
        return loss


def build_optimizer(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    bias_correction: bool = True,
    fused: bool | None = None,
    lr_scales: Mapping[str, float] | None = None,
) -> torch.optim.Optimizer:
    """torch AdamW (the fused kernel where torch has one) or, with bias_correction=False, Google's variant."""
    groups = param_groups(model, weight_decay, lr_scales)
    if not bias_correction:
        return GoogleAdamW(groups, lr=lr, betas=betas, eps=eps)
    if fused is None:  # the fused kernel: CUDA, and CPU since torch 2.4 (5x faster than foreach there)
        fused = all(p.device.type in ("cuda", "cpu") for g in groups for p in g["params"])
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)
    except (RuntimeError, TypeError):  # an older torch or an unsupported device/dtype: the foreach kernel
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


def warmup_steps_for(total_steps: int, warmup_ratio: float, warmup_steps: int | None) -> int:
    """Explicit warmup_steps win; else ceil(ratio x total) as transformers does."""
    if warmup_steps is not None:
        return warmup_steps
    return math.ceil(total_steps * warmup_ratio)


def lr_at(
    step: int, *, base_lr: float, total_steps: int, warmup_steps: int = 0, schedule: str = "linear"
) -> float:
    """Learning rate for the update after `step` completed updates (0-based), as transformers' schedules.

    Warmup: base_lr * step / warmup_steps. Then linear: decays to 0 at total_steps; cosine: half a cosine
    to 0; constant: base_lr. Never negative past total_steps.
    Example: lr_at(5, base_lr=1.0, total_steps=20, warmup_steps=10) -> 0.5
    """
    if step < warmup_steps:
        return base_lr * step / max(1, warmup_steps)
    if schedule == "constant":
        return base_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "linear":
        return base_lr * max(0.0, 1.0 - progress)
    if schedule == "cosine":
        return base_lr * max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))
    raise ValueError(f"unknown schedule {schedule!r}; use linear, cosine or constant")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group to lr, times its "lr_scale" when it has one (see param_groups)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def clip_gradients(model: nn.Module, max_norm: float | None) -> Tensor | None:
    """Clip the global gradient norm; returns the norm before clipping (None when not clipping)."""
    if not max_norm:
        return None
    return torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], max_norm)
