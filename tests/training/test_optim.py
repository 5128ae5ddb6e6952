"""Schedules against transformers' schedulers; AdamW groups; Google's AdamWeightDecayOptimizer by its formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bertkit.model.config import BertConfig
from bertkit.model.heads import BertForSequenceClassification
from bertkit.training.optim import GoogleAdamW, build_optimizer, lr_at, param_groups, warmup_steps_for


def _reference(schedule: str, total: int, warmup: int, base: float) -> list[float]:
    tf = pytest.importorskip("transformers")
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base)
    make = {
        "linear": tf.get_linear_schedule_with_warmup,
        "cosine": tf.get_cosine_schedule_with_warmup,
        "constant": lambda o, w, t: tf.get_constant_schedule_with_warmup(o, w),
    }[schedule]
    sched = make(opt, warmup, total)
    lrs = []
    for _ in range(total + 3):  # a few steps past the end: never negative
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
@pytest.mark.parametrize(("total", "warmup"), [(100, 10), (37, 0), (20, 19)])
def test_lr_at_matches_transformers(schedule: str, total: int, warmup: int) -> None:
    ref = _reference(schedule, total, warmup, 3e-5)
    ours = [
        lr_at(s, base_lr=3e-5, total_steps=total, warmup_steps=warmup, schedule=schedule)
        for s in range(total + 3)
    ]
    np.testing.assert_allclose(ours[: total + 1], ref[: total + 1], rtol=1e-9, atol=1e-15)
    # past the end: constant stays, linear and cosine stay at 0 (transformers' cosine would climb back up)
    expected_tail = ref[total + 1 :] if schedule == "constant" else [0.0, 0.0]
    np.testing.assert_allclose(ours[total + 1 :], expected_tail, atol=1e-15)


def test_lr_at_docstring_example_and_bad_schedule() -> None:
    assert lr_at(5, base_lr=1.0, total_steps=20, warmup_steps=10) == 0.5
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_at(50, base_lr=1.0, total_steps=20, schedule="step")


def test_warmup_steps() -> None:
    assert warmup_steps_for(1000, 0.1, None) == 100
    assert warmup_steps_for(1001, 0.1, None) == 101  # ceil, as transformers' get_warmup_steps
    assert warmup_steps_for(1000, 0.1, 7) == 7


def test_param_groups_exclude_bias_and_layernorm() -> None:
    config = BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37
    )
    model = BertForSequenceClassification(config)
    decay, no_decay = param_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    decay_names = {names[id(p)] for p in decay["params"]}
    # BERT's rule by name: no decay for bias and LayerNorm
    assert no_decay_names == {n for n in names.values() if n.endswith("bias") or "norm" in n}
    assert all("norm" not in n and not n.endswith("bias") for n in decay_names)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert len(decay_names) + len(no_decay_names) == len(list(model.parameters()))


def test_google_adamw_follows_its_formula() -> None:
    """Google's optimization.py: m, v without bias correction; update = m/(sqrt(v)+eps) + wd*w; w -= lr*update."""
    torch.manual_seed(0)
    w0 = torch.randn(4, 3, dtype=torch.float64)
    grads = [torch.randn(4, 3, dtype=torch.float64) for _ in range(5)]
    param = nn.Parameter(w0.clone())
    opt = GoogleAdamW([{"params": [param], "weight_decay": 0.01}], lr=1e-2, betas=(0.9, 0.999), eps=1e-6)
    w, m, v = w0.numpy().copy(), np.zeros((4, 3)), np.zeros((4, 3))
    for g in grads:
        param.grad = g.clone()
        opt.step()
        gn = g.numpy()
        m = 0.9 * m + 0.1 * gn
        v = 0.999 * v + 0.001 * gn * gn
        w = w - 1e-2 * (m / (np.sqrt(v) + 1e-6) + 0.01 * w)
    np.testing.assert_allclose(param.detach().numpy(), w, rtol=1e-12)


def test_build_optimizer_variants() -> None:
    model = nn.Linear(3, 2)
    assert isinstance(build_optimizer(model, lr=1e-3, weight_decay=0.0), torch.optim.AdamW)
    assert isinstance(build_optimizer(model, lr=1e-3, weight_decay=0.0, bias_correction=False), GoogleAdamW)
    # torch AdamW's first step with bias correction moves each weight by ~lr (Adam's unit step)
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.0)
    before = model.weight.detach().clone()
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    np.testing.assert_allclose((before - model.weight.detach()).abs().numpy(), 1e-3, rtol=1e-3)
