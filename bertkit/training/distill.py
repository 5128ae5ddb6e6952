"""Distillation on the training engine: one or several fine-tuned teachers into a smaller, faster student.

    teachers (fine-tuned folders) --run once over every training window--> soft targets (mean over teachers)
    --carried in the features--> train(DistillTask(task), student, ...) --> an ordinary fine-tuned folder

DistillTask wraps the teachers' task: features, forward, decode and metrics are the task's own; collate adds the
soft targets and the loss is  hard_weight * task.loss + soft_weight * soft loss at the temperature
(bertkit.training.distill_targets). The loop, precision, accumulation, resume, DDP and the report are train()'s.
Teacher outputs are computed once per window before training and never again (not per epoch, not per seed).

Unlabelled text (--unlabeled) is labelled by the teachers: its soft targets, plus the ensemble's decoded
prediction as its hard label (data distillation). The teachers' (ensemble's) own dev metrics, the student's,
their parameter counts and their speed, measured in the same run on the dev set, go to metrics.json under
"distillation" and to distillation.png.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from bertkit import runtime as rt_mod
from bertkit.engine import featurize
from bertkit.runtime import Runtime
from bertkit.tasks.base import Batch, Feature, Task
from bertkit.tokenization import Tokenizer
from bertkit.training.config import TrainConfig
from bertkit.training.distill_match import (
    Matcher,
    check_heads,
    collate_intermediates,
    parse_layer_map,
    teacher_intermediates,
)
from bertkit.training.distill_report import measure_speed, plot_distillation
from bertkit.training.distill_student import count_parameters, student_from_folder, student_from_layers
from bertkit.training.distill_targets import SoftTargets, soft_targets_for
from bertkit.training.distill_teachers import (
    Distilled,
    distilled_examples,
    load_teachers,
    read_unlabeled,
    teacher_metrics,
)
from bertkit.training.experiment import DataSpec, load_data
from bertkit.training.loop import train
from bertkit.training.report import METRICS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillConfig:
    """What to distil into what. Exactly one of student_layers (a count, or the teacher's layer indices) and
    student (a model folder, or a config.json for a random student) is set."""

    teachers: tuple[str, ...]
    student_layers: int | tuple[int, ...] | None = None
    student: str | None = None
    temperature: float = 2.0
    soft_weight: float = 1.0  # weight of the soft-target loss (already scaled by T²)
    hard_weight: float = 1.0  # weight of the task's own loss on the labels
    unlabeled: str | None = None  # plain text (one text per line) or JSONL that the teachers label
    max_unlabeled: int | None = None
    measure_speed: bool = True
    speed_rounds: int = 3
    latency_examples: int = 100
    # intermediate matching (bertkit.training.distill_match); 0 = off
    hidden_weight: float = 0.0  # MSE of the mapped layers' hidden states (projected when widths differ)
    attention_weight: float = 0.0  # KL between the mapped layers' attention distributions
    layer_map: str | None = None  # "0:1,1:3,2:5" student:teacher; None = uniform, i -> (i + 1) * T // S - 1

    def __post_init__(self) -> None:
        if not self.teachers:
            raise ValueError("distillation needs at least one --teacher folder")
        if (self.student_layers is None) == (self.student is None):
            raise ValueError("pass exactly one of --student-layers (N or I,J,K) and --student DIR")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.soft_weight < 0 or self.hard_weight < 0 or self.soft_weight + self.hard_weight == 0:
            raise ValueError("soft_weight and hard_weight must be >= 0 and not both 0")
        if self.hidden_weight < 0 or self.attention_weight < 0:
            raise ValueError("--hidden-weight and --attention-weight must be >= 0")

    @property
    def matching(self) -> bool:
        return bool(self.hidden_weight or self.attention_weight)


class DistillTask:
    """The teachers' task, with soft targets in the batch and the distillation loss; everything else delegates,
    so the saved folder (bertkit.json) names the plain task."""

    def __init__(
        self, task: Task, soft: SoftTargets, temperature: float, soft_weight: float, hard_weight: float
    ):
        self.task, self.soft = task, soft
        self.temperature, self.soft_weight, self.hard_weight = temperature, soft_weight, hard_weight
        self.matcher: Matcher | None = None  # set per student when intermediate matching is on

    def extra_module(self) -> nn.Module | None:
        """Trained with the student, never saved with it: the hidden-state projection, if any."""
        return self.matcher.proj if self.matcher is not None else None

    def __getattr__(self, name: str) -> Any:  # name, main_metric, labels, decode, metrics, to_json, ...
        return getattr(self.task, name)

    def features_batch(
        self, examples: Sequence[Any], tokenizer: Tokenizer, max_seq_length: int
    ) -> list[list[Feature]]:
        plain = [e for e in examples if not isinstance(e, Distilled)]
        made = iter(featurize_examples(self.task, plain, tokenizer, max_seq_length))
        return [[dict(f) for f in e.features] if isinstance(e, Distilled) else next(made) for e in examples]

    def features(self, example: Any, tokenizer: Tokenizer, max_seq_length: int) -> list[Feature]:
        return self.features_batch([example], tokenizer, max_seq_length)[0]

    def collate(self, features: Sequence[Feature]) -> Batch:
        batch = self.task.collate(features)
        if features and all("soft" in f for f in features):
            batch["soft_targets"] = self.soft.collate([f["soft"] for f in features])
        if features and "attention_mask" in batch:
            batch.update(collate_intermediates(features, batch["attention_mask"]))
        return batch

    def loss(self, outputs: Any, batch: Batch) -> Tensor:
        total = self.task.loss(outputs, batch) * self.hard_weight if self.hard_weight else 0.0
        if self.soft_weight and "soft_targets" in batch:
            total = total + self.soft_weight * self.soft.loss(
                outputs, batch["soft_targets"], batch, self.temperature
            )
        if self.matcher is not None:
            total = total + self.matcher.loss(batch)
        return total


def featurize_examples(
    task: Task, examples: Sequence[Any], tokenizer: Tokenizer, max_len: int
) -> list[list[Feature]]:
    batch_fn = getattr(task, "features_batch", None)
    if batch_fn is not None:
        return batch_fn(examples, tokenizer, max_len) if examples else []
    return [task.features(e, tokenizer, max_len) for e in examples]


# ---- the run -----------------------------------------------------------------------------------------------
def _check_examples(task: Task, examples: Sequence[Any], split: str) -> None:
    check = getattr(task, "check", None)
    for example in examples if check else ():
        reason = check(example, labelled=True)
        if reason:
            raise ValueError(f"{getattr(example, 'source', '') or split}: {reason} (for the teachers' task)")


def build_student(task: Task, dcfg: DistillConfig, teacher: nn.Module) -> tuple[nn.Module, list[int] | None]:
    if dcfg.student_layers is not None:
        return student_from_layers(teacher, dcfg.student_layers)
    return student_from_folder(task, dcfg.student, teacher, dcfg.teachers[0]), None


def distill(spec: DataSpec, dcfg: DistillConfig, config: TrainConfig, output_dir: str | Path,
            seeds: Sequence[int] | None = None) -> dict[str, Any]:  # fmt: skip
    """The whole run; with several seeds one student per seed in output_dir/seed-N and seeds.json."""
    out = Path(output_dir)
    runtime = rt_mod.start(config.device, config.precision)
    rt_mod.set_threads(config.num_threads)
    try:
        task, teachers = load_teachers(dcfg.teachers)
        # the data is read and checked for the teachers' task (their labels, problem type, tagging head, ...)
        spec = dataclasses.replace(spec, task_options={**task.to_json(), **spec.task_options})
        data = load_data(spec, write_rejects=runtime.is_main)
        if data.task.name != task.name:
            raise ValueError(
                f"--task {spec.task} is a {data.task.name} task but the teachers are {task.name}"
            )
        if not data.dev:
            raise ValueError("distillation reports the teacher and the student on dev data: pass --dev-file or a "
                             "--data-dir with a dev split")  # fmt: skip
        _check_examples(task, data.train, "training")
        _check_examples(task, data.dev, "dev")
        tokenizer = Tokenizer.from_pretrained(dcfg.teachers[0])
        for t in teachers:
            t.to(runtime.device)
        unlabeled = read_unlabeled(dcfg.unlabeled, task, dcfg.max_unlabeled) if dcfg.unlabeled else []
        teacher_dev, singles = teacher_metrics(task, teachers, data.dev, tokenizer, config, runtime)
        logger.info("teacher dev: %s", teacher_dev)
        if dcfg.soft_weight or unlabeled or dcfg.matching:
            train_examples = distilled_examples(task, teachers, data.train, unlabeled, tokenizer, dcfg.temperature,
                                                config, runtime)  # fmt: skip
        else:  # the student alone (hard loss only): no soft targets to compute
            train_examples = list(data.train)
        pairs = _match_teachers(task, dcfg, teachers, train_examples, config, runtime) if dcfg.matching else None
        distill_task = DistillTask(task, soft_targets_for(task), dcfg.temperature, dcfg.soft_weight,
                                   dcfg.hard_weight)  # fmt: skip
        context = {"teacher_metrics": teacher_dev, "single_teachers": singles, "labelled": len(data.train),
                   "unlabeled": len(unlabeled), "layer_pairs": pairs}  # fmt: skip
        runs = {}
        for seed in seeds or [config.seed]:
            folder = out if not seeds or len(seeds) == 1 else out / f"seed-{seed}"
            runs[seed] = _one_student(distill_task, teachers, tokenizer, train_examples, data.dev, dcfg,
                                      config.replace(seed=seed), folder, runtime, context)  # fmt: skip
    finally:
        rt_mod.stop(runtime)
    if not seeds or len(seeds) == 1:
        return next(iter(runs.values()))
    from bertkit.training.experiment import summarize

    summary = {"seeds": list(seeds), "metrics": summarize(runs), "per_seed": runs}
    (out / "seeds.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _match_teachers(task: Task, dcfg: DistillConfig, teachers: Sequence[nn.Module], train_examples: list,
                    config: TrainConfig, runtime: Runtime) -> list[tuple[int, int]]:  # fmt: skip
    """Check the layer map against the student and cache the first teacher's intermediates in the features."""
    if config.gradient_checkpointing:  # its recomputation would re-run the capture hooks out of step
        raise ValueError("--hidden-weight / --attention-weight do not work with --gradient-checkpointing; drop one")
    if task.name == "multiple_choice":
        raise ValueError("--hidden-weight / --attention-weight support classification, tagging and qa, "
                         "not multiple_choice")  # fmt: skip
    probe, _ = build_student(task, dcfg, teachers[0])  # only its shape: each seed builds its own
    s_cfg, t_cfg = probe.config, teachers[0].config
    pairs = parse_layer_map(dcfg.layer_map, s_cfg.num_hidden_layers, t_cfg.num_hidden_layers)
    if dcfg.attention_weight:
        check_heads(s_cfg.num_attention_heads, t_cfg.num_attention_heads)
    features = [f for e in train_examples for f in e.features]
    teacher_intermediates(task, teachers[0], features, pairs, bool(dcfg.hidden_weight), bool(dcfg.attention_weight),
                          config.eval_batch_size, runtime.device)  # fmt: skip
    return pairs


def _one_student(task: DistillTask, teachers: Sequence[nn.Module], tokenizer: Tokenizer, train_examples: list,
                 dev: Sequence[Any], dcfg: DistillConfig, config: TrainConfig, out: Path, runtime: Runtime,
                 context: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    rt_mod.seed_everything(config.seed)
    # the features carry the teachers' soft targets, which the on-disk feature store does not hold
    config = config.replace(feature_cache="off")
    student, layers = build_student(task.task, dcfg, teachers[0])
    if context["layer_pairs"] is not None:
        task.matcher = Matcher(student, context["layer_pairs"], dcfg.hidden_weight, dcfg.attention_weight,
                               teachers[0].config.hidden_size)  # fmt: skip
        if task.matcher.proj is not None and runtime.world_size > 1:  # DDP would not average its gradients
            raise ValueError("--hidden-weight with a student narrower or wider than the teacher needs a "
                             "projection, which is not synchronised across processes yet: run on one process")  # fmt: skip
    try:
        result = train(task, student, tokenizer, train_examples, dev, config, out, runtime)
    finally:
        if task.matcher is not None:
            task.matcher.capture.remove()
    if not runtime.is_main:
        return result.metrics
    student.to(runtime.device)
    teacher_dev = context["teacher_metrics"]
    main = task.main_metric
    n_teacher = [count_parameters(t) for t in teachers]
    report: dict[str, Any] = {
        "teacher": teacher_dev,
        "student": result.metrics,
        "retained": result.metrics[main] / teacher_dev[main] if teacher_dev.get(main) else None,
        "parameters": {"student": count_parameters(student), "teacher": sum(n_teacher), "per_teacher": n_teacher},
        "teachers": list(dcfg.teachers),
        "student_layers": layers,
        "student_from": dcfg.student or dcfg.teachers[0],
        "temperature": dcfg.temperature, "soft_weight": dcfg.soft_weight, "hard_weight": dcfg.hard_weight,
        "labelled_examples": context["labelled"], "unlabeled_examples": context["unlabeled"],
    }  # fmt: skip
    if task.matcher is not None:
        report["intermediate"] = {"hidden_weight": dcfg.hidden_weight, "attention_weight": dcfg.attention_weight,
                                  **task.matcher.report()}  # fmt: skip
        task.matcher = None
    if context["single_teachers"]:
        singles = context["single_teachers"]
        report["single_teachers"] = singles
        report["single_teacher_mean"] = {main: statistics.fmean(s[main] for s in singles)}
    if dcfg.measure_speed:
        features = featurize(task.task, dev, tokenizer, config.max_seq_length)
        speed = measure_speed(task.task, teachers, student, features, config.eval_batch_size, runtime,
                              dcfg.speed_rounds, dcfg.latency_examples)  # fmt: skip
        report["speed"], report["speedup"] = speed, speed["speedup"]
    metrics = json.loads((out / METRICS).read_text(encoding="utf-8"))
    metrics["distillation"] = report
    (out / METRICS).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if dcfg.measure_speed and report["retained"] is not None:
        plot_distillation(report, main, out / "distillation.png")
    logger.info("student %s %.4f = %.1f%% of the teacher's %.4f", main, result.metrics[main],
                100 * (report["retained"] or 0), teacher_dev.get(main, float("nan")))  # fmt: skip
    return metrics


__all__ = ["DistillConfig", "DistillTask", "distill"]
