"""`bertkit train`: fine-tune on a preset (--task sst2 --data-dir DIR) or your own files, evaluate, predict."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from bertkit.training.config import TrainConfig
from bertkit.training.options import column, split_options

HELP = {
    "epochs": "passes over the training data (fractions allowed; default 3)",
    "max_steps": "stop after this many optimizer steps (overrides --epochs)",
    "batch_size": "examples per micro-batch and process (default 32); global batch = this x grad-accum x processes",
    "eval_batch_size": "examples per evaluation batch (default 64)",
    "grad_accum": "micro-batches per optimizer step (default 1)",
    "lr": "peak learning rate (default 5e-5)",
    "weight_decay": "AdamW decoupled weight decay, never on bias/LayerNorm (default 0.01)",
    "bias_correction": "Adam bias correction; --no-bias-correction is Google's AdamWeightDecayOptimizer",
    "schedule": "linear, cosine or constant after warmup (default linear)",
    "warmup_ratio": "fraction of the steps spent warming up (default 0.1)",
    "warmup_steps": "warmup steps (overrides --warmup-ratio)",
    "max_grad_norm": "clip the global gradient norm (default 1.0)",
    "max_seq_length": "tokens per sequence or window, [CLS]/[SEP] included (default 128)",
    "precision": "fp32, bf16 (autocast on CPU or CUDA) or fp16 (CUDA, with a gradient scaler)",
    "gradient_checkpointing": "recompute activations in backward: less memory, ~30%% more compute",
    "group_by_length": "batches of similar lengths (less padding; default on)",
    "seed": "seed for initialisation, dropout and data order (default 42)",
    "eval_steps": "evaluate every N steps (default: once per epoch)",
    "save_steps": "resumable checkpoint every N steps (default: at each evaluation, at least every 500)",
    "save_best": "keep the model of the best evaluation by the main metric (default on)",
    "early_stopping_patience": "stop after N evaluations without improvement",
    "device": "cpu, cuda, cuda:1, ... (default: CUDA when available)",
    "num_threads": "CPU threads for torch (default: torch's choice)",
    "progress": "progress bar with loss, lr and examples/s (default on)",
    "resume": "continue from OUT/checkpoints after a crash (default on)",
    "feature_cache": "tokenize once into this folder and reuse it in later runs and for every seed: 'auto' "
    "(default: ~/.cache/bertkit/features), a folder, or 'off' (features as lists in memory)",
}


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
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            t.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                           help=HELP.get(f.name))  # fmt: skip
        else:
            kind = {"int": int, "float": float, "int | None": int, "float | None": float}.get(
                str(f.type), str
            )
            t.add_argument(flag, dest=f.name, type=kind, default=None, help=HELP.get(f.name))


def collect(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(data options, training options, run options) from --config and flags (flags win)."""
    options: dict[str, Any] = {}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"--config {path} does not exist")
        options = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(options, dict):
            raise ValueError(f"{path}: expected a JSON object of options")
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
