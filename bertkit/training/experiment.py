"""A whole fine-tuning run as the CLI sees it: data (a preset or the user's files) -> validation -> train ->
evaluate -> predict, once or for several seeds. `bertkit train` parses flags into these dataclasses and calls run().
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit import runtime as rt_mod
from bertkit.data.readers import READERS
from bertkit.data.validate import handle_rejects, split_valid
from bertkit.engine import predict
from bertkit.feature_cache import featurize_stored
from bertkit.tasks import FAMILIES, PRESETS, build_task, fields_for, get_preset, read_split, split_file
from bertkit.tasks.base import Task, UnknownLabel
from bertkit.tokenization import Tokenizer
from bertkit.training.config import TrainConfig
from bertkit.training.loop import TrainResult, evaluate, train

logger = logging.getLogger(__name__)

Column = int | str


@dataclass(frozen=True)
class DataSpec:
    """Where the examples come from: a preset + data_dir, or files with named columns/fields."""

    task: str  # a preset (sst2, mrpc, ...) or a family (classification, ...)
    data_dir: str | None = None
    train_file: str | None = None
    dev_file: str | None = None
    test_file: str | None = None
    dev_split: str = "dev"  # which preset split evaluates (e.g. "dev" of mnli-mm is dev_mismatched.tsv)
    reader: str | None = None  # READERS key; default from the file suffix
    # reader arguments: text/text_pair/label columns or fields, header, delimiter, ...
    fields: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)  # labels, problem_type, window_stride, ...
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    rejects: str | None = None  # skip bad rows into this JSONL file instead of stopping

    @property
    def is_preset(self) -> bool:
        return self.task.lower() not in FAMILIES


@dataclass
class Data:
    task: Task
    train: list[Any]
    dev: list[Any]
    test: list[Any]


# family -> (reader for .json/.jsonl files, reader for anything else); --reader overrides
_FAMILY_READERS = {
    "classification": ("jsonl", "tsv"),
    "tagging": ("tagged_jsonl", "conll"),
    "qa": ("squad", "squad"),
    "multiple_choice": ("choice_jsonl", "swag"),
}
# column / field names a text-classification file has unless the run names others
_DEFAULT_FIELDS = {"text": "text", "label": "label"}


def reader_for(path: str | Path, reader: str | None, family: str = "classification") -> str:
    if reader:
        if reader not in READERS:
            raise ValueError(f"unknown reader {reader!r}; readers: {', '.join(sorted(READERS))}")
        return reader
    name = str(path).removesuffix(".gz")
    json_reader, other = _FAMILY_READERS.get(family, _FAMILY_READERS["classification"])
    return json_reader if name.endswith((".jsonl", ".json")) else other


def _read(spec: DataSpec, split: str, path: str | None) -> list[Any] | None:
    if spec.is_preset:
        preset = get_preset(spec.task)
        if path is not None:  # an explicit file overrides the preset's file for this split
            return list(READERS[preset.reader](Path(path), **fields_for(preset, split)))
        if spec.data_dir is None or split_file(preset, spec.data_dir, split) is None:
            return None
        return read_split(preset, spec.data_dir, split)
    if path is None:
        return None
    reader = reader_for(path, spec.reader, spec.task.lower())
    if reader in ("tsv", "csv", "jsonl"):
        fields = {**_DEFAULT_FIELDS, **spec.fields}
        if split == "test":  # predictions need no label: an unlabelled test file is fine
            if reader == "jsonl":
                fields["label_optional"] = True
            else:
                fields["label"] = None
    else:
        fields = dict(spec.fields)
    return list(READERS[reader](Path(path), **fields))


def _check_header(examples: Sequence[Any], split_name: str) -> None:
    """A header line read as data shows up as a one-off label on line 1: stop before it becomes a class."""
    if len(examples) < 3 or not isinstance(getattr(examples[0], "label", None), str):
        return
    first = examples[0].label
    if not any(getattr(e, "label", None) == first for e in examples[1:]):
        raise ValueError(
            f"{examples[0].source}: the label {first!r} appears on this line only: is the first line a header? "
            f"Pass --header to skip it (or fix the {split_name} file)"
        )


def load_data(spec: DataSpec, need_train: bool = True, write_rejects: bool = True) -> Data:
    """Read, validate (file:line errors or rejects) and label every split; builds the task.

    write_rejects=False skips bad rows (with --rejects) without writing them: other DDP ranks than 0.
    """

    def reject(rows: list, what: str) -> None:
        if spec.rejects and not write_rejects:
            return  # rank 0 writes the same rows
        handle_rejects(rows, spec.rejects, what)

    if spec.is_preset:
        preset = get_preset(spec.task)
        family, options = preset.family, {**preset.options, **spec.task_options}
    else:
        family, options = spec.task.lower(), dict(spec.task_options)
    task = build_task(family, options)
    raw_train = _read(spec, "train", spec.train_file) if need_train else None
    if need_train and raw_train is None:
        raise FileNotFoundError(
            f"no training data: pass --data-dir with a {spec.task} train file, or --train-file"
        )
    train_items, rejects = split_valid(raw_train or [], lambda e: _check(task, e, labelled=True, soft=True))
    if train_items and not spec.is_preset and "labels" not in spec.task_options:
        _check_header(train_items, "training")
    if train_items:
        task = task.prepare(train_items)
    train_items, late = split_valid(train_items, lambda e: _check(task, e, labelled=True))
    rejects += late
    reject(rejects, "training")
    raw_dev = _read(spec, spec.dev_split, spec.dev_file)
    dev_items, dev_rejects = split_valid(raw_dev or [], lambda e: _check(task, e, labelled=True))
    reject(dev_rejects, "evaluation")
    raw_test = _read(spec, "test", spec.test_file)
    test_items, test_rejects = split_valid(raw_test or [], lambda e: _check(task, e, labelled=False))
    reject(test_rejects, "test")
    if spec.max_train_examples is not None:
        train_items = train_items[: spec.max_train_examples]
    if spec.max_eval_examples is not None:
        dev_items = dev_items[: spec.max_eval_examples]
    return Data(task, train_items, dev_items, test_items)


def _check(task: Task, example: Any, labelled: bool, soft: bool = False) -> str | None:
    reason = task.check(example, labelled=labelled)
    # Before labels are discovered, an unknown label cannot be judged yet.
    if soft and isinstance(reason, UnknownLabel):
        return None
    return reason


def write_predictions(path: Path, examples: Sequence[Any], predictions: Sequence[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for example, prediction in zip(examples, predictions, strict=True):
            f.write(
                json.dumps({"source": getattr(example, "source", ""), **prediction}, ensure_ascii=False)
                + "\n"
            )


def run_once(spec: DataSpec, data: Data, model_name: str, config: TrainConfig, output_dir: Path,
             do_train: bool = True, do_eval: bool = True, do_predict: bool = False) -> dict[str, Any]:  # fmt: skip
    """Train (or load), evaluate and predict with one seed; returns the final metrics."""
    runtime = rt_mod.setup(config.device, config.precision, config.seed, config.num_threads)
    metrics: dict[str, Any] = {}
    try:
        if do_train:
            model, report = data.task.build_model(model_name)
            tokenizer = Tokenizer.from_pretrained(_tokenizer_folder(model_name))
            result: TrainResult = train(data.task, model, tokenizer, data.train, data.dev if do_eval else None,
                                        config, output_dir, runtime)  # fmt: skip
            metrics = result.metrics
        else:
            model, _ = data.task.build_model(str(output_dir), from_finetuned=True)
            model.to(runtime.device)
            tokenizer = Tokenizer.from_pretrained(output_dir)
            if do_eval and data.dev and runtime.is_main:  # rank 0 alone: no runtime, so no barrier
                dev = featurize_stored(data.task, data.dev, tokenizer, config.max_seq_length, config.feature_cache)
                metrics, _ = evaluate(
                    data.task, model, tokenizer, data.dev, config, runtime, dev, keep_predictions=False
                )
        if do_predict and runtime.is_main:
            if not data.test:
                raise FileNotFoundError(
                    "--do-predict needs test data: a preset test file in --data-dir, or --test-file"
                )
            feats = featurize_stored(data.task, data.test, tokenizer, config.max_seq_length, config.feature_cache)
            predictions = predict(
                data.task, model, data.test, feats, config.eval_batch_size, runtime.device, runtime.autocast
            )
            write_predictions(output_dir / "predictions.jsonl", data.test, predictions)
    finally:
        rt_mod.stop(runtime)
    return metrics


def _tokenizer_folder(model_name: str) -> Path:
    from bertkit.weights.load import model_folder, resolve_model_path

    return model_folder(resolve_model_path(model_name))


def summarize(per_seed: dict[int, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of each numeric metric over seeds."""
    keys = sorted({k for m in per_seed.values() for k, v in m.items() if isinstance(v, float)})
    out = {}
    for key in keys:
        values = [m[key] for m in per_seed.values() if isinstance(m.get(key), float)]
        out[key] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "values": values}  # fmt: skip
    return out


def run(spec: DataSpec, model_name: str, config: TrainConfig, output_dir: str | Path, *, do_train: bool = True,
        do_eval: bool = True, do_predict: bool = False, seeds: Sequence[int] | None = None) -> dict[str, Any]:  # fmt: skip
    """The whole run. With several seeds each goes to output_dir/seed-N and seeds.json holds mean and std."""
    out = Path(output_dir)
    data = load_data(spec, need_train=do_train, write_rejects=os.environ.get("RANK", "0") == "0")
    logger.info("data: %d train, %d dev, %d test examples; task %s", len(data.train), len(data.dev), len(data.test),
                data.task)  # fmt: skip
    if not seeds or len(seeds) == 1:
        cfg = config if not seeds else config.replace(seed=seeds[0])
        return run_once(spec, data, model_name, cfg, out, do_train, do_eval, do_predict)
    per_seed = {}
    for seed in seeds:
        per_seed[seed] = run_once(spec, data, model_name, config.replace(seed=seed), out / f"seed-{seed}",
                                  do_train, do_eval, do_predict)  # fmt: skip
    summary = {"seeds": list(seeds), "metrics": summarize(per_seed), "per_seed": per_seed}
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def spec_from_dict(data: dict[str, Any], source: str = "<config>") -> DataSpec:
    known = {f.name for f in dataclasses.fields(DataSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"{source}: unknown data option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return DataSpec(**data)


__all__ = ["PRESETS", "Data", "DataSpec", "load_data", "run", "run_once", "spec_from_dict", "summarize"]
