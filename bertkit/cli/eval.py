"""`bertkit eval --model OUT (--task NAME --data-dir DIR | --dev-file F)`: metrics of a fine-tuned model."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a fine-tuned model folder on labelled data",
                       description="Reads the task (labels, options) from the model folder's bertkit.json; the data "
                       "comes from a preset (--task NAME --data-dir DIR) or a file (--dev-file).")  # fmt: skip
    p.add_argument("--model", required=True, help="a folder written by bertkit train")
    p.add_argument("--task", help="preset whose dev split to read (default: the family saved in the model)")
    p.add_argument("--data-dir")
    p.add_argument("--dev-file", help="labelled file; columns/fields as for bertkit train")
    p.add_argument("--split", default="dev", help="preset split (dev, test, dev_mismatched, ...)")
    p.add_argument("--text", help="text column or field (default 'text')")
    p.add_argument("--text-pair")
    p.add_argument("--label", help="label column or field (default 'label')")
    p.add_argument("--header", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--rejects", help="skip bad rows into this JSONL file instead of stopping")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                   help="fp32 (default); bf16: bf16 weights where the CPU has native bf16, else "
                   "autocast; fp16: CUDA")  # fmt: skip
    p.add_argument("--output", help="also write the metrics JSON here")
    p.add_argument("--feature-cache", default="auto", help="read the features from this cache (the store a "
                   "training run made for the same data, tokenizer and options, or a new one) and stream them: "
                   "'auto' (default: ~/.cache/bertkit/features), a folder, or 'off' (lists in memory)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from bertkit.feature_cache import featurize_stored
    from bertkit.inference.predictor import Predictor
    from bertkit.prepare import bf16_weights_prepared
    from bertkit.training.config import TrainConfig
    from bertkit.training.experiment import DataSpec, load_data
    from bertkit.training.loop import evaluate
    from bertkit.training.options import column

    predictor = Predictor.from_pretrained(args.model, batch_size=args.batch_size, device=args.device,
                                          precision=args.precision)  # fmt: skip
    fields = {
        k: column(v)
        for k, v in (("text", args.text), ("text_pair", args.text_pair), ("label", args.label))
        if v
    }
    if args.header is not None:
        fields["header"] = args.header
    task_name = args.task or predictor.task.name
    spec = DataSpec(task=task_name, data_dir=args.data_dir, dev_file=args.dev_file, dev_split=args.split,
                    fields=fields, task_options=predictor.task.to_json(),
                    rejects=args.rejects)  # fmt: skip
    if spec.is_preset:
        spec = dataclasses.replace(spec, fields={})
    data = load_data(spec, need_train=False)
    if not data.dev:
        raise FileNotFoundError(
            f"no labelled {args.split} data: pass --task NAME --data-dir DIR, or --dev-file"
        )
    # bf16 weights (prepared by the Predictor) need no autocast; elsewhere evaluate() autocasts as asked
    precision = "fp32" if bf16_weights_prepared(predictor.model) else args.precision
    config = TrainConfig(
        max_seq_length=predictor.max_seq_length, eval_batch_size=args.batch_size, precision=precision
    )
    features = featurize_stored(predictor.task, data.dev, predictor.tokenizer, config.max_seq_length,
                                args.feature_cache)  # fmt: skip
    metrics, _ = evaluate(predictor.task, predictor.model, predictor.tokenizer, data.dev, config,
                          features=features, keep_predictions=False)  # fmt: skip
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    return 0
