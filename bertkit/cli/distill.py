"""`bertkit distill`: one or several fine-tuned teachers into a smaller, faster student (bertkit.training.distill)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from bertkit.training.config import TrainConfig
from bertkit.training.options import add_train_config_flags, column

_DISTILL_HELP = {
    "epochs": "passes over the training data, unlabelled text included (default 3)",
    "lr": "peak learning rate of the student (default 5e-5)",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="distil fine-tuned teachers (one, or an ensemble) into a small student",
                       description="Run the teachers once over the training data (and --unlabeled text), train the "
                       "student on their soft targets plus the labels, and save OUT as an ordinary fine-tuned folder "
                       "with metrics.json holding a 'distillation' report: teacher and student dev metrics, retained "
                       "share, parameters, and both speeds measured in the same run.",
                       epilog="examples:\n"
                       "  bertkit distill --teacher runs/sst2 --student-layers 3 --task sst2 \\\n"
                       "      --data-dir glue/SST-2 --unlabeled more.txt --output-dir runs/sst2-l3\n"
                       "  bertkit distill --teacher runs/s/seed-1 --teacher runs/s/seed-2 --teacher runs/s/seed-3 \\\n"
                       "      --student-layers 6 --task sst2 --data-dir glue/SST-2 --output-dir runs/sst2-ens",
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    k = p.add_argument_group("teachers and student")
    k.add_argument("--teacher", action="append", required=True,
                   help="fine-tuned model folder; repeat for an ensemble (soft targets averaged)")  # fmt: skip
    s = k.add_mutually_exclusive_group(required=True)
    s.add_argument("--student-layers",
                   help="the first teacher with N of its layers (every other one for N = half, as DistilBERT), "
                   "or the layers named by index: 0,2,4")  # fmt: skip
    s.add_argument("--student", help="a (smaller) model folder sharing the teacher's vocab, or a config.json "
                   "(random init); its head starts from the teacher's where shapes allow")  # fmt: skip
    k.add_argument(
        "--temperature", type=float, default=2.0, help="softmax temperature of the soft targets (default 2)"
    )
    k.add_argument(
        "--soft-weight", type=float, default=1.0, help="weight of the soft-target loss, T²-scaled (default 1)"
    )
    k.add_argument(
        "--hard-weight", type=float, default=1.0, help="weight of the loss on the labels (default 1)"
    )
    k.add_argument(
        "--unlabeled", help="plain text (one per line) or JSONL the teachers label: data distillation"
    )
    k.add_argument("--max-unlabeled", type=int, help="use the first N unlabelled texts")
    k.add_argument("--hidden-weight", type=float, default=0.0,
                   help="weight of the hidden-state matching loss: MSE over real tokens, through a learned projection "
                   "when the widths differ (TinyBERT); default 0 = off")  # fmt: skip
    k.add_argument("--attention-weight", type=float, default=0.0,
                   help="weight of the attention matching loss: KL between the teacher's and the student's attention "
                   "distributions (MiniLM); needs equal head counts; default 0 = off")  # fmt: skip
    k.add_argument("--layer-map", help="student:teacher layer pairs (0-based) to match, e.g. 0:1,1:3,2:5; default "
                   "uniform: student layer i -> teacher layer (i+1)*T/S - 1 (TinyBERT)")  # fmt: skip
    k.add_argument("--no-speed", action="store_true", help="skip timing the teacher and the student on dev")
    d = p.add_argument_group("data")
    d.add_argument(
        "--task", required=True, help="a preset (sst2, conll2003, squad, ...) or a family for your files"
    )
    d.add_argument("--data-dir", help="folder with the preset's official files")
    d.add_argument("--train-file")
    d.add_argument("--dev-file")
    d.add_argument(
        "--reader", help="tsv, csv, jsonl, conll, tagged_jsonl, squad, ... (default: by family and file)"
    )
    d.add_argument("--text", type=column, help="text column or JSON field (default 'text')")
    d.add_argument("--text-pair", type=column, help="second text column / field")
    d.add_argument("--label", type=column, help="label column / field (default 'label')")
    d.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                   help="the first line of a TSV/CSV names the columns")  # fmt: skip
    d.add_argument("--max-train-examples", type=int, help="use the first N training examples")
    d.add_argument("--max-eval-examples", type=int, help="use the first N dev examples")
    t = p.add_argument_group("training (as bertkit train)")
    t.add_argument("--output-dir", required=True, help="the student's model folder to write")
    t.add_argument("--seeds", help="comma-separated seeds: one student each in OUT/seed-N")
    add_train_config_flags(t, _DISTILL_HELP)


def run(args: argparse.Namespace) -> int:
    from bertkit.training.distill import DistillConfig, distill
    from bertkit.training.distill_student import parse_layers
    from bertkit.training.experiment import DataSpec

    fields = {
        k: getattr(args, k) for k in ("text", "text_pair", "label", "header") if getattr(args, k) is not None
    }
    spec = DataSpec(task=args.task, data_dir=args.data_dir, train_file=args.train_file, dev_file=args.dev_file,
                    reader=args.reader, fields=fields, max_train_examples=args.max_train_examples,
                    max_eval_examples=args.max_eval_examples)  # fmt: skip
    train_options = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                     if getattr(args, f.name) is not None}  # fmt: skip
    config = TrainConfig.from_dict(train_options, "bertkit distill")
    dcfg = DistillConfig(
        teachers=tuple(args.teacher),
        student_layers=parse_layers(args.student_layers) if args.student_layers else None,
        student=args.student, temperature=args.temperature, soft_weight=args.soft_weight,
        hard_weight=args.hard_weight, unlabeled=args.unlabeled, max_unlabeled=args.max_unlabeled,
        measure_speed=not args.no_speed, hidden_weight=args.hidden_weight,
        attention_weight=args.attention_weight, layer_map=args.layer_map,
    )  # fmt: skip
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()] if args.seeds else None
    result = distill(spec, dcfg, config, args.output_dir, seeds=seeds)
    if seeds and len(seeds) > 1:
        for name, s in result["metrics"].items():
            print(f"{name}: {s['mean']:.4f} ± {s['std']:.4f} over seeds {','.join(map(str, seeds))}")
    else:
        report = result["distillation"]
        print(json.dumps({k: v for k, v in result.items() if k != "distillation"}, indent=2))
        print(f"teacher: {json.dumps(report['teacher'])}")
        print(
            f"retained {report['retained']:.4f} of the teacher's main metric; speed-up {report.get('speedup')}x; "
            f"parameters {report['parameters']['student']:,} vs {report['parameters']['teacher']:,}"
        )
    print(f"model folder: {args.output_dir}")
    return 0
