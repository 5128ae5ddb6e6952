"""`bertkit train`: fine-tune on a preset (--task sst2 --data-dir DIR) or your own files, evaluate, predict."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bertkit.textfile import load_json_object
from bertkit.training.config import TrainConfig
from bertkit.training.options import add_train_config_flags, column, split_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune a model on a dataset preset or your own TSV/CSV/JSONL files",
                       description="Fine-tune, evaluate on dev, save OUT as a model folder (transformers and bertkit "
                       "load it) with metrics.json, and optionally predict the test file.",
                       epilog="examples:\n"
                       "  bertkit train --task sst2 --data-dir glue/SST-2 --model minilm --output-dir runs/sst2\n"
                       "  bertkit train --task classification --train-file train.csv --dev-file dev.csv \\\n"
                       "      --text review --label stars --model minilm --output-dir runs/reviews\n"
                       "  bertkit train --task mrpc --data-dir glue/MRPC --output-dir runs/mrpc --seeds 1,2,3",
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument(
        "--config", help="JSON file of options (any flag below, with underscores); flags override it"
    )
    d = p.add_argument_group("data")
    d.add_argument(
        "--task",
        help="a preset (sst2, mrpc, cola, stsb, qqp, mnli, mnli-mm, qnli, rte, wnli, xnli, "
        "chnsenticorp, thucnews, afqmc, ocnli, lcqmc, ...) or a family (classification) for your own files",
    )
    d.add_argument("--data-dir", help="folder with the preset's official files")
    d.add_argument("--train-file")
    d.add_argument("--dev-file")
    d.add_argument("--test-file")
    d.add_argument("--dev-split", help="preset split used for evaluation (default dev)")
    d.add_argument("--reader", help="tsv, csv, jsonl, conll, tagged_jsonl, squad, swag, choice_jsonl, ... (default: by task family and file name)")
    d.add_argument(
        "--text", type=column, help="text column (0-based index or header name) or JSON field; default 'text'"
    )
    d.add_argument("--text-pair", type=column, help="second text column / field, for sentence pairs")
    d.add_argument("--label", type=column, help="label column / field; default 'label'")
    d.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the first line of a TSV/CSV names the columns (default: when columns are given by name)",
    )
    d.add_argument(
        "--labels", help="comma-separated label names in id order (default: found in the training file)"
    )
    d.add_argument(
        "--problem-type", choices=["single_label_classification", "multi_label_classification", "regression"]
    )
    d.add_argument(
        "--label-separator", help="separator of several labels in one multi-label cell (default ',')"
    )
    d.add_argument("--threshold", type=float, help="multi-label: probability from which a label is predicted")
    d.add_argument(
        "--window-stride",
        type=int,
        help="long documents: slide windows sharing this many tokens and pool their logits",
    )
    d.add_argument("--pooling", choices=["mean", "max"], help="how window logits are pooled (default mean)")
    d.add_argument("--main-metric", help="metric that picks the best checkpoint (default per task)")
    d.add_argument("--task-options", type=json.loads, help="JSON object of further task options")
    d.add_argument("--max-train-examples", type=int, help="use the first N training examples")
    d.add_argument("--max-eval-examples", type=int, help="use the first N dev examples")
    d.add_argument(
        "--rejects", help="skip bad rows into this JSONL file instead of stopping with their file:line"
    )
    t = p.add_argument_group("training")
    t.add_argument("--model", help="model folder, Google checkpoint, hub id or alias (default minilm)")
    t.add_argument("--output-dir", help="the fine-tuned model folder to write")
    t.add_argument(
        "--do-train", action=argparse.BooleanOptionalAction, default=None, help="train (default on)"
    )
    t.add_argument(
        "--do-eval", action=argparse.BooleanOptionalAction, default=None, help="evaluate on dev (default on)"
    )
    t.add_argument(
        "--do-predict",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write OUT/predictions.jsonl for the test split",
    )
    t.add_argument(
        "--seeds", help="comma-separated seeds: one run each in OUT/seed-N, mean and std in OUT/seeds.json"
    )
    add_train_config_flags(t)


def collect(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(data options, training options, run options) from --config and flags (flags win)."""
    options: dict[str, Any] = {}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"--config {path} does not exist")
        options = load_json_object(path, "a JSON object of options (--config)", "--config")
    flags = {
        k: v for k, v in vars(args).items() if v is not None and k not in ("config", "command", "verbose")
    }
    options.update(flags)
    return split_options(options)


def run(args: argparse.Namespace) -> int:
    from bertkit.training.experiment import run as run_experiment
    from bertkit.training.experiment import spec_from_dict

    data, train_options, options = collect(args)
    if not data.get("task"):
        raise ValueError("--task is required: a preset name (e.g. sst2) or a family (classification)")
    if not options.get("output_dir"):
        raise ValueError("--output-dir is required: the folder that will hold the fine-tuned model")
    spec = spec_from_dict(data, "bertkit train")
    config = TrainConfig.from_dict(train_options, "bertkit train")
    seeds = options.get("seeds")
    if isinstance(seeds, str):
        seeds = [int(s) for s in seeds.split(",") if s.strip()]
    result = run_experiment(spec, options.get("model", "minilm"), config, options["output_dir"],
                            do_train=options.get("do_train", True), do_eval=options.get("do_eval", True),
                            do_predict=options.get("do_predict", False), seeds=seeds)  # fmt: skip
    if seeds and len(seeds) > 1:
        for name, s in result["metrics"].items():
            print(f"{name}: {s['mean']:.4f} ± {s['std']:.4f} over seeds {','.join(map(str, seeds))}")
    else:
        print(json.dumps(result, indent=2))
    print(f"model folder: {options['output_dir']}")
    return 0
