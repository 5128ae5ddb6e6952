"""The export check on what users read: decoded task outputs (labels, entities, answers), not only logits.

The same engine (bertkit.engine: featurize -> run -> decode) runs once on the PyTorch model and once on the graph; an fp32
graph must give the same labels, tags, entities, answer texts and choices, and probabilities and scores within
a tolerance. An int8 graph is approximate by design: the check reports how many decoded outputs agree, and the
task's metric on both sides when the inputs carry gold labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bertkit.engine import Engine

# Real inputs for every task family (each task keeps those it can read): SST-2, STS-B and CoNLL-2003 dev
# sentences, a SQuAD v1.1 dev paragraph, SocialIQa dev questions, and Chinese text.
_SUPER_BOWL = (
    "Super Bowl 50 was an American football game to determine the champion of the National Football League "
    "(NFL) for the 2015 season. The American Football Conference (AFC) champion Denver Broncos defeated the "
    "National Football Conference (NFC) champion Carolina Panthers 24–10 to earn their third Super Bowl title. "
    "The game was played on February 7, 2016, at Levi's Stadium in the San Francisco Bay Area at Santa Clara, "
    "California."
)
SAMPLE_INPUTS: tuple[dict[str, Any], ...] = (
    {"text": "it 's a charming and often affecting journey ."},
    {"text": "unflinchingly bleak and desperate"},
    {"text": "the greatest musicians have always been as much about the music as about their own fame ."},
    {"text": "hide new secretions from the parental units"},
    {"text": "A man with a hard hat is dancing.", "text_pair": "A man wearing a hard hat is dancing."},
    {"text": "A young child is riding a horse.", "text_pair": "A child is riding a horse."},
    {"text": "CRICKET - LEICESTERSHIRE TAKE OVER AT TOP AFTER INNINGS VICTORY ."},
    {"text": "LONDON 1996-08-30"},
    {"text": "West Indian all-rounder Phil Simmons took four for 38 on Friday as Leicestershire beat Somerset "
     "by an innings and 39 runs in two days to take over at the head of the county championship ."},
    {"text": "EU rejects German call to boycott British lamb ."},
    {"text": "选择珠江花园的原因就是方便，有电动扶梯直接到达海边。"},
    {"question": "Which NFL team represented the AFC at Super Bowl 50?", "context": _SUPER_BOWL},
    {"question": "Where did Super Bowl 50 take place?", "context": _SUPER_BOWL},
    {"question": "Which NFL team won Super Bowl 50?", "context": _SUPER_BOWL},
    {"context": "Tracy didn't go home that evening and resisted Riley's attacks.",
     "question": "What does Tracy need to do before this?",
     "choices": ["make a new plan", "Go home and see Riley", "Find somewhere to go"]},
    {"context": "Sydney walked past a homeless woman asking for change but did not have any money they could "
     "give to her. Sydney felt bad afterwards.", "question": "How would you describe Sydney?",
     "choices": ["sympathetic", "like a person who was unable to help", "incredulous"]},
)  # fmt: skip


def usable_inputs(predictor: Engine, inputs: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The task's examples for the inputs it can read (the others are skipped: they belong to other tasks)."""
    examples = []
    for record in inputs:
        try:
            examples.extend(predictor.examples([record]))
        except ValueError:
            continue
    return examples


def differences(ours: Any, ref: Any, atol: float, where: str = "") -> list[str]:
    """Where two decoded outputs differ: any label, text, id or length, or a number more than atol apart.

    Example: differences({"label": "pos", "p": 0.5}, {"label": "neg", "p": 0.5}, 1e-4) -> ["label: 'pos' != 'neg'"]
    """
    if isinstance(ref, float) and isinstance(ours, float | int) and not isinstance(ours, bool):
        return (
            [] if math.isclose(ours, ref, rel_tol=1e-5, abs_tol=atol) else [f"{where}: {ours!r} != {ref!r}"]
        )
    if isinstance(ref, Mapping) and isinstance(ours, Mapping):
        if set(ref) != set(ours):
            return [f"{where}: keys {sorted(ours)} != {sorted(ref)}"]
        return [
            d for k in ref for d in differences(ours[k], ref[k], atol, f"{where}.{k}" if where else str(k))
        ]
    if isinstance(ref, list | tuple) and isinstance(ours, list | tuple):
        if len(ref) != len(ours):
            return [f"{where}: {len(ours)} items != {len(ref)}"]
        return [
            d
            for i, (a, b) in enumerate(zip(ours, ref, strict=True))
            for d in differences(a, b, atol, f"{where}[{i}]")
        ]
    return [] if ours == ref else [f"{where}: {ours!r} != {ref!r}"]


def decisions(prediction: Any) -> Any:
    """A decoded output without its numbers and scored alternatives (probabilities, scores, a QA n-best
    list): the labels, tags, entities, answer or choice a reader acts on.

    Example: decisions({"label": "pos", "probabilities": {"pos": 0.9, "neg": 0.1}}) -> {"label": "pos"}
    """
    if isinstance(prediction, Mapping):
        return {k: decisions(v) for k, v in prediction.items() if not _scored(v)}
    if isinstance(prediction, list | tuple):
        return [decisions(v) for v in prediction if not _scored(v)]
    return prediction


def _scored(value: Any) -> bool:
    """A number, or a container holding one (at any depth)."""
    if isinstance(value, float):
        return True
    if isinstance(value, Mapping):
        return any(_scored(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_scored(v) for v in value)
    return False


def number_gap(ours: Any, ref: Any) -> float:
    """The largest |ours - ref| over the numbers at the same place in two decoded outputs (0.0 if none)."""
    if isinstance(ref, float) and isinstance(ours, float):
        return abs(ours - ref)
    if isinstance(ref, Mapping) and isinstance(ours, Mapping):
        return max((number_gap(ours[k], ref[k]) for k in ref if k in ours), default=0.0)
    if isinstance(ref, list | tuple) and isinstance(ours, list | tuple):
        return max((number_gap(a, b) for a, b in zip(ours, ref, strict=False)), default=0.0)
    return 0.0


@dataclass
class DecodedCheck:
    """How the graph's decoded outputs compare with PyTorch's on `total` inputs."""

    total: int
    agree: int  # inputs whose decisions (labels, entities, answers) are identical
    mismatches: list[str]  # per input: where the outputs differ beyond the tolerance (fp32 must have none)
    max_gap: float = 0.0  # largest change of a decoded number (probability, score)
    metric: str | None = None  # the task's main metric, when every input carries a gold label
    torch_metric: float | None = None
    graph_metric: float | None = None

    def __str__(self) -> str:
        text = f"decoded outputs agree on {self.agree}/{self.total} inputs (scores within {self.max_gap:.1e})"
        if self.metric is not None:
            text += f" ({self.metric} {self.torch_metric:.4f} torch, {self.graph_metric:.4f} onnx)"
        return text


def compare_decoded(reference: Engine, graph: Engine, examples: Sequence[Any], atol: float) -> DecodedCheck:
    """Run both predictors on the examples and compare what they decode."""
    ref = reference.predict_examples(examples)
    ours = graph.predict_examples(examples)
    mismatches, agree, gap = [], 0, 0.0
    for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
        agree += decisions(a) == decisions(b)
        gap = max(gap, number_gap(a, b))
        diff = differences(a, b, atol)
        if diff:
            source = getattr(examples[i], "source", "") or f"input {i}"
            mismatches.append(f"{source}: {'; '.join(diff[:3])}")
    check = DecodedCheck(len(examples), agree, mismatches, gap)
    task = reference.task
    check_example = getattr(task, "check", None)
    if (
        examples
        and check_example is not None
        and all(check_example(e, labelled=True) is None for e in examples)
    ):
        name = getattr(task, "main_metric", None)
        ref_metrics, our_metrics = task.metrics(ref, examples), task.metrics(ours, examples)
        if name in ref_metrics:
            check.metric, check.torch_metric, check.graph_metric = name, ref_metrics[name], our_metrics[name]
    return check
