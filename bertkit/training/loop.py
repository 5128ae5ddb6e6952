"""train() and evaluate(): the plain loop every task shares (AMP, accumulation, clipping, eval, save, resume).

Batches: the epoch's plan of global micro-batches (batch_size x world size examples) is a pure function of
the seed and the epoch, so a resumed run replays the same order; under DDP each rank takes every
world_size-th example of each global micro-batch. Each micro-batch loss is weighted by its share of the
examples in the optimizer step, so 2 processes x batch 4, 1 process x batch 8 and 1 process x batch 4 x 2
accumulation steps all take the same step.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from bertkit import runtime as rt_mod
from bertkit.data.collate import shuffled_batches
from bertkit.data.feature_store import feature_lengths
from bertkit.engine import featurize, run_model, to_device
from bertkit.feature_cache import featurize_stored
from bertkit.runtime import Runtime
from bertkit.tasks.base import Feature, Task
from bertkit.training.checkpoint import (
    TrainState,
    list_checkpoints,
    load_checkpoint,
    remove_checkpoints,
    save_checkpoint,
    save_model_folder,
)
from bertkit.training.config import TrainConfig
from bertkit.training.optim import (
    build_optimizer,
    clip_gradients,
    lr_at,
    param_groups,
    set_lr,
    warmup_steps_for,
)
from bertkit.training.report import LossWindow, MetricsLog, write_metrics, write_report

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    metrics: dict[str, float]  # dev metrics of the saved model (empty without dev data)
    best_step: int | None
    steps: int
    train_seconds: float
    examples_per_second: float
    stopped_early: bool
    output_dir: Path
    history: list[dict] = field(default_factory=list)


def evaluate(
    task: Task,
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[Any],
    config: TrainConfig,
    runtime: Runtime | None = None,
    features: Sequence[Feature] | None = None,
    keep_predictions: bool = True,
) -> tuple[dict[str, float], list[dict] | None]:
    """(metrics, predictions) of model on labelled examples. keep_predictions=False returns None for them and
    lets the task score its outputs without building one prediction dict per example (task.score)."""
    runtime = runtime or Runtime(next(model.parameters()).device, config.precision)
    if features is None:
        features = featurize(task, examples, tokenizer, config.max_seq_length)
    outputs, run_order = run_model(
        task, model, features, config.eval_batch_size, runtime.device, runtime.autocast
    )
    if not keep_predictions:
        return task.score(outputs, run_order, examples), None
    predictions = task.decode(outputs, run_order, examples)
    return task.metrics(predictions, examples), predictions


def _plan(lengths: list[int], config: TrainConfig, runtime: Runtime, epoch: int) -> list[list[list[int]]]:
    """The epoch's optimizer steps, each a list of global micro-batches (lists of feature indices).

    The shuffle works on whole optimizer steps (batch_size x grad_accum x world size examples), so the data
    order does not depend on how a step is split into micro-batches and processes.
    """
    micro = config.batch_size * runtime.world_size
    steps = shuffled_batches(
        lengths, micro * config.grad_accum, config.seed * 1_000_003 + epoch, config.group_by_length
    )
    plan = [[step[i : i + micro] for i in range(0, len(step), micro)] for step in steps]
    if runtime.distributed:  # every rank needs an example in each micro-batch
        plan = [[b for b in step if len(b) >= runtime.world_size] for step in plan]
        plan = [step for step in plan if step]
    return plan


def _gather_rng(runtime: Runtime) -> list[dict]:
    state = rt_mod.rng_state()
    if not runtime.distributed:
        return [state]
    import torch.distributed as dist

    states: list[Any] = [None] * runtime.world_size
    dist.all_gather_object(states, state)
    return states


@dataclass
class Run:
    """Everything a step and an evaluation need, built once by setup()."""

    task: Task
    model: nn.Module  # the bare model (saved, evaluated)
    ddp: nn.Module  # what the step runs: the model, or its DistributedDataParallel wrapper
    tokenizer: Any
    config: TrainConfig
    runtime: Runtime
    out: Path
    features: list[Feature]
    lengths: list[int]
    dev_examples: Sequence[Any] | None
    dev_features: list[Feature] | None
    optimizer: torch.optim.Optimizer
    scaler: Any
    total_steps: int
    steps_per_epoch: int
    warmup: int
    eval_every: int
    save_every: int
    state: TrainState
    log: MetricsLog

    @property
    def done(self) -> bool:
        return self.state.step >= self.total_steps or self.state.stopped_early


def setup(
    task: Task,
    model: nn.Module,
    tokenizer: Any,
    train_examples: Sequence[Any],
    dev_examples: Sequence[Any] | None,
    config: TrainConfig,
    out: Path,
    runtime: Runtime,
) -> Run:
    """Features, optimizer, schedule lengths, and the state to start from (a resumed checkpoint, if any)."""
    if not train_examples:
        raise ValueError("no training examples: the training data is empty after validation")
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if positions is not None and config.max_seq_length > positions:
        raise ValueError(
            f"max_seq_length {config.max_seq_length} exceeds the model's max_position_embeddings {positions}; "
            f"pass --max-seq-length {positions} or less (use --window-stride for longer documents)"
        )
    # through the feature cache: a compact store on disk, tokenized once for every later run and seed
    features = featurize_stored(task, train_examples, tokenizer, config.max_seq_length, config.feature_cache,
                                runtime)  # fmt: skip
    lengths = feature_lengths(features)
    dev_features = (
        featurize_stored(task, dev_examples, tokenizer, config.max_seq_length, config.feature_cache, runtime)
        if dev_examples
        else None
    )

    model.to(runtime.device)
    if config.gradient_checkpointing:
        model.set_gradient_checkpointing(True)
    optimizer = build_optimizer(
        model,
        lr=config.lr,
        weight_decay=config.weight_decay,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_eps,
        bias_correction=config.bias_correction,
        lr_scales=task.lr_scales(),
    )
    # modules the task trains beside the model but never saves into its folder (distillation's projection)
    extra = task.extra_module() if hasattr(task, "extra_module") else None
    if extra is not None:
        extra.to(runtime.device)
        for group in param_groups(extra, config.weight_decay):
            if group["params"]:
                optimizer.add_param_group(group)
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    steps_per_epoch = len(_plan(lengths, config, runtime, 0))
    if steps_per_epoch == 0:
        raise ValueError(
            f"{len(features)} training features make no batch for {runtime.world_size} processes"
        )
    total_steps = config.max_steps or math.ceil(config.epochs * steps_per_epoch)
    eval_every = config.eval_steps or steps_per_epoch

    state = TrainState(num_features=len(features))
    checkpoints = list_checkpoints(out) if config.resume else []
    if checkpoints:
        state, rng = load_checkpoint(checkpoints[-1], model, optimizer, config, scaler)
        if state.num_features != len(features):
            raise ValueError(
                f"{checkpoints[-1]} was trained on {state.num_features} features, this data gives {len(features)}; "
                "resume with the same data, use a new --output-dir, or pass --no-resume"
            )
        rt_mod.set_rng_state(rng[runtime.rank] if runtime.rank < len(rng) else rng[0])
        logger.info("resumed from %s (step %d of %d)", checkpoints[-1], state.step, total_steps)
    elif runtime.is_main and config.resume is False:
        remove_checkpoints(out)
    ddp = model
    if runtime.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        ddp = DistributedDataParallel(model, device_ids=ids)
    return Run(
        task, model, ddp, tokenizer, config, runtime, out, features, lengths, dev_examples, dev_features,
        optimizer, scaler, total_steps, steps_per_epoch,
        warmup=warmup_steps_for(total_steps, config.warmup_ratio, config.warmup_steps),
        eval_every=eval_every, save_every=config.save_steps or min(eval_every, 500), state=state,
        log=MetricsLog(out, state.step, enabled=runtime.is_main),
    )  # fmt: skip


def step(run: Run, micro_batches: list[list[int]]) -> Tensor:
    """One optimizer step over global micro-batches of feature indices -> this rank's mean loss (on the device).

    Each micro-batch loss is weighted by its share of the step's examples, so the step does not depend on how
    it is split into micro-batches and processes.
    """
    runtime, config, optimizer, scaler = run.runtime, run.config, run.optimizer, run.scaler
    set_lr(optimizer, lr_at(run.state.step, base_lr=config.lr, total_steps=run.total_steps,
                            warmup_steps=run.warmup, schedule=config.schedule))  # fmt: skip
    n_step = sum(len(b) for b in micro_batches)
    step_loss = torch.zeros((), device=runtime.device)
    for k, global_batch in enumerate(micro_batches):
        rank_share = global_batch[runtime.rank :: runtime.world_size]
        batch = to_device(run.task.collate([run.features[i] for i in rank_share]), runtime.device)
        last = k == len(micro_batches) - 1
        sync = run.ddp.no_sync() if runtime.distributed and not last else contextlib.nullcontext()
        with sync:
            with runtime.autocast():
                outputs = run.task.forward(run.ddp, batch)
            loss = run.task.loss(outputs, batch)
            weighted = loss * (len(rank_share) * runtime.world_size / n_step)
            (scaler.scale(weighted) if scaler is not None else weighted).backward()
        step_loss += loss.detach().float() * len(rank_share)
    if scaler is not None:
        scaler.unscale_(optimizer)
    clip_gradients(run.model, config.max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return step_loss / max(1, sum(len(b[runtime.rank :: runtime.world_size]) for b in micro_batches))


def evaluate_and_save(run: Run) -> None:
    """Evaluate on dev (rank 0), save the model folder when the main metric improved, decide early stopping."""
    state, config, task = run.state, run.config, run.task
    if run.runtime.is_main:
        t0 = time.perf_counter()
        metrics, _ = evaluate(task, run.model, run.tokenizer, run.dev_examples, config, run.runtime,
                              run.dev_features, keep_predictions=False)
        record = {"type": "eval", "step": state.step, "epoch": state.epoch, **metrics,
                  "seconds": round(time.perf_counter() - t0, 3)}  # fmt: skip
        run.log.write(record)
        state.history.append(record)
        value = metrics.get(task.main_metric)
        if value is None:
            raise ValueError(f"main metric {task.main_metric!r} is not among the metrics {sorted(metrics)}")
        if state.best_metric is None or value > state.best_metric:
            state.best_metric, state.best_step, state.evals_without_improvement = value, state.step, 0
            if config.save_best:
                save_model_folder(run.out, run.model, run.tokenizer, task, config)
        else:
            state.evals_without_improvement += 1
        logger.info("step %d: %s", state.step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    run.state = state = rt_mod.broadcast_object(run.runtime, state)
    patience = config.early_stopping_patience
    if patience is not None and state.evals_without_improvement >= patience:
        state.stopped_early = True
        logger.info("early stopping at step %d: %d evaluations without improvement", state.step, patience)


def save_resumable(run: Run) -> None:
    """A resumable checkpoint with every rank's RNG state (written by rank 0)."""
    rng = _gather_rng(run.runtime)
    if run.runtime.is_main:
        save_checkpoint(run.out, run.model, run.optimizer, run.state, run.config, rng, run.scaler)
    rt_mod.barrier(run.runtime)


def train(
    task: Task,
    model: nn.Module,
    tokenizer: Any,
    train_examples: Sequence[Any],
    dev_examples: Sequence[Any] | None,
    config: TrainConfig,
    output_dir: str | Path,
    runtime: Runtime | None = None,
) -> TrainResult:
    """Fine-tune model on train_examples; output_dir becomes the model folder (best model when evaluating).

    runtime: the process's Runtime from rt_mod.setup(), which seeded it before the model was built; without
    one, train() sets up (and seeds) the process itself.
    """
    runtime = runtime or rt_mod.setup(config.device, config.precision, config.seed, config.num_threads)
    run = setup(task, model, tokenizer, train_examples, dev_examples, config, Path(output_dir), runtime)
    bar = tqdm(total=run.total_steps, initial=run.state.step, disable=not (config.progress and runtime.is_main),
               desc="train", dynamic_ncols=True)  # fmt: skip
    logger.info(
        "training: %d examples -> %d features, %d steps (%d per epoch), global batch %d, warmup %d, %s on %s",
        len(train_examples), len(run.features), run.total_steps, run.steps_per_epoch,
        config.batch_size * config.grad_accum * runtime.world_size, run.warmup, config.precision, runtime.device,
    )  # fmt: skip
    model.train()
    window = LossWindow(runtime.device)
    while not run.done:
        plan = _plan(run.lengths, config, runtime, run.state.epoch)
        for micro_batches in plan[run.state.epoch_step :]:
            if run.done:
                break
            t0 = time.perf_counter()
            loss = step(run, micro_batches)
            state, seconds, n_step = run.state, time.perf_counter() - t0, sum(len(b) for b in micro_batches)
            state.step += 1
            state.epoch_step += 1
            state.train_seconds += seconds
            state.examples_seen += n_step
            window.add(loss, n_step, seconds)
            bar.update(1)
            if state.step % config.log_steps == 0 or state.step == run.total_steps:
                record = window.record(state, run.optimizer.param_groups[0]["lr"])
                run.log.write(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                                ex_s=f"{record['examples_per_second']:.1f}")  # fmt: skip
            end_of_epoch = state.epoch_step == len(plan)
            if dev_examples and (state.step % run.eval_every == 0 or state.step == run.total_steps or
                                 (config.eval_steps is None and end_of_epoch)):  # fmt: skip
                evaluate_and_save(run)
            if run.state.step % run.save_every == 0 and not run.done:
                save_resumable(run)
        else:
            run.state.epoch += 1
            run.state.epoch_step = 0
    bar.close()
    return _finish(task, model, tokenizer, dev_examples, run.dev_features, config, run.out, runtime, run.state)


def _finish(
    task: Task,
    model: nn.Module,
    tokenizer: Any,
    dev_examples: Sequence[Any] | None,
    dev_features: Sequence[Feature] | None,
    config: TrainConfig,
    out: Path,
    runtime: Runtime,
    state: TrainState,
) -> TrainResult:
    """Save the model folder (the best one is already there), reload the best weights, write metrics and plots."""
    metrics: dict[str, float] = {}
    predictions = None
    if runtime.is_main:
        if (
            dev_examples
            and config.save_best
            and state.best_step is not None
            and state.best_step != state.step
        ):
            best, _ = task.build_model(str(out), from_finetuned=True)
            model.load_state_dict(best.state_dict())
            logger.info(
                "reloaded the best model (step %d, %s %.4f)",
                state.best_step,
                task.main_metric,
                state.best_metric,
            )
        if not (dev_examples and config.save_best):
            save_model_folder(out, model, tokenizer, task, config)
        if dev_examples:
            metrics, predictions = evaluate(
                task, model, tokenizer, dev_examples, config, runtime, dev_features
            )
        speed = state.examples_seen / max(state.train_seconds, 1e-9)
        summary = {**metrics, "best_step": state.best_step, "steps": state.step, "stopped_early": state.stopped_early,
                   "train_seconds": round(state.train_seconds, 2), "train_examples_per_second": round(speed, 2)}  # fmt: skip
        write_metrics(out, summary)
        write_report(out, task, predictions, dev_examples)
        remove_checkpoints(out)
    rt_mod.barrier(runtime)
    return TrainResult(
        metrics=metrics,
        best_step=state.best_step,
        steps=state.step,
        train_seconds=state.train_seconds,
        examples_per_second=state.examples_seen / max(state.train_seconds, 1e-9),
        stopped_early=state.stopped_early,
        output_dir=out,
        history=state.history,
    )
