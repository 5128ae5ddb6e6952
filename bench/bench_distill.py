"""Distillation: teacher vs student on SST-2 dev, each student beside the same student trained without a teacher.

    python bench/bench_distill.py sst2 --teacher runs/sst2            # 3- and 2-layer students of one teacher
    python bench/bench_distill.py ensemble --teacher runs/s/seed-1 --teacher runs/s/seed-2 --teacher runs/s/seed-3
    python bench/bench_distill.py speed --teacher runs/sst2 --student OUT/distill-L3 --student OUT/distill-L2

The teacher(s) are `bertkit train` folders, e.g. all-MiniLM-L6-v2 on the first 8,000 SST-2 training sentences:
    bertkit train --task sst2 --data-dir ../shared/data/glue/SST-2 --model minilm --max-train-examples 8000 \\
        --epochs 1 --batch-size 32 --lr 1e-4 --max-seq-length 64 --precision bf16 --warmup-ratio 0.1 --seeds 1,2,3

Students train on the same labelled sentences (--examples) plus, with --unlabeled N, the next N sentences of the
SST-2 training file without their labels (the teachers label them: data distillation); the baseline student
trains on the labelled sentences only, with the hard loss only (no teacher). Hyperparameters: --epochs (1),
batch 32, --lr (1e-4), max length 64, bf16 autocast, warmup 10 %, seed 1, temperature --temperature (2).
Speed: examples/s on all 872 dev sentences (batch 64) and batch-1 latency (100 sentences), teacher and student
timed in pairs per batch in the same process (bertkit.training.distill_report); a shared machine slows both alike.
`speed` times saved folders the same way (bf16 autocast, as the runs): the teacher(s) against each --student.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bertkit.training.config import TrainConfig
from bertkit.training.distill import DistillConfig, distill
from bertkit.training.experiment import DataSpec

REPO = Path(__file__).resolve().parents[1]
SST2 = REPO.parent / "shared/data/glue/SST-2"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["sst2", "ensemble", "speed"])
    p.add_argument("--teacher", action="append", required=True)
    p.add_argument("--student", action="append", help="speed: a student folder (repeatable)")
    p.add_argument("--rounds", type=int, default=5, help="speed: throughput rounds")
    p.add_argument("--data-dir", default=str(SST2))
    p.add_argument(
        "--examples", type=int, default=8000, help="labelled training sentences (the teachers' own)"
    )
    p.add_argument("--unlabeled", type=int, default=8000, help="next N training sentences, labels dropped")
    p.add_argument("--layers", default="3,2", help="student layer counts (sst2)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--no-baseline", action="store_true", help="skip the students trained without a teacher")
    p.add_argument("--baseline-all", action="store_true", help="a baseline for every layer count (default: first)")
    p.add_argument("--out", default=None, help="folder for the student runs (default: a temporary one)")
    return p.parse_args()


def unlabeled_file(data_dir: Path, start: int, n: int, path: Path) -> Path:
    """Sentences start+1 .. start+n of train.tsv (after the header), one per line, no labels."""
    lines = (data_dir / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    path.write_text(
        "".join(line.rsplit("\t", 1)[0] + "\n" for line in lines[start : start + n]), encoding="utf-8"
    )
    return path


def run(
    args: argparse.Namespace, out: Path, name: str, layers: int, *, baseline: bool, unlabeled: Path | None
) -> dict:
    spec = DataSpec(task="sst2", data_dir=args.data_dir, max_train_examples=args.examples)
    config = TrainConfig(epochs=args.epochs, batch_size=32, lr=args.lr, max_seq_length=64, precision="bf16",
                         warmup_ratio=0.1, seed=1, progress=False)  # fmt: skip
    dcfg = DistillConfig(teachers=tuple(args.teacher), student_layers=layers, temperature=args.temperature,
                         soft_weight=0.0 if baseline else 1.0, hard_weight=1.0,
                         unlabeled=None if baseline else (str(unlabeled) if unlabeled else None))  # fmt: skip
    metrics = distill(spec, dcfg, config, out / name)
    report = metrics["distillation"]
    row = {"run": name, "accuracy": metrics["accuracy"], "teacher": report["teacher"]["accuracy"],
           "retained": report["retained"], "speedup": report["speedup"],
           "latency_speedup": report["speed"].get("latency_speedup"),
           "teacher_eps": report["speed"]["teacher"]["examples_per_second"],
           "student_eps": report["speed"]["student"]["examples_per_second"],
           "teacher_ms": report["speed"]["teacher"]["latency_ms_p50"],
           "student_ms": report["speed"]["student"]["latency_ms_p50"],
           "student_params": report["parameters"]["student"], "teacher_params": report["parameters"]["teacher"],
           "train_seconds": metrics.get("train_seconds")}  # fmt: skip
    if "single_teachers" in report:
        row["teacher_mean"] = report["single_teacher_mean"]["accuracy"]
        row["single_teachers"] = [t["accuracy"] for t in report["single_teachers"]]
    print(json.dumps(row), flush=True)
    return row


def speed(args: argparse.Namespace) -> None:
    from bertkit import runtime as rt
    from bertkit.engine import featurize
    from bertkit.tokenization import Tokenizer
    from bertkit.training.distill_report import measure_speed
    from bertkit.training.distill_teachers import load_teachers
    from bertkit.training.experiment import load_data

    task, teachers = load_teachers(args.teacher)
    data = load_data(DataSpec(task="sst2", data_dir=args.data_dir, max_train_examples=1))
    features = featurize(task, data.dev, Tokenizer.from_pretrained(args.teacher[0]), 64)
    runtime = rt.start(None, "bf16")
    for folder in args.student or []:
        student = task.build_model(folder, from_finetuned=True)[0].eval()
        s = measure_speed(task, teachers, student, features, 64, runtime, args.rounds, 100)
        print(json.dumps({"folder": folder, **s}), flush=True)
        print(f"| {Path(folder).name} | {s['teacher']['examples_per_second']:.1f} | "
              f"{s['student']['examples_per_second']:.1f} | {s['speedup']:.2f}x | {s['teacher']['latency_ms_p50']:.1f}"
              f" / {s['student']['latency_ms_p50']:.1f} ms | {s['latency_speedup']:.2f}x |", flush=True)  # fmt: skip
    print("(shared machine: teacher and student timed in pairs per batch, order alternating)")


def main() -> None:
    args = parse()
    if args.part == "speed":
        speed(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        extra = unlabeled_file(Path(args.data_dir), args.examples, args.unlabeled, out / "unlabeled.txt") \
            if args.unlabeled else None  # fmt: skip
        rows = []
        counts = [int(x) for x in args.layers.split(",")] if args.part == "sst2" else [None]
        for n in counts:
            layers = n if n is not None else _teacher_layers(args.teacher[0])
            rows.append(run(args, out, f"distill-L{layers}", layers, baseline=False, unlabeled=extra))
            if not args.no_baseline and (args.baseline_all or n == counts[0]):
                rows.append(run(args, out, f"alone-L{layers}", layers, baseline=True, unlabeled=None))
    print("\n| run | student acc. | teacher acc. | retained | speed-up (batch 64) | batch-1 speed-up | "
          "student / teacher params |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for r in rows:
        print(f"| {r['run']} | {r['accuracy']:.4f} | {r['teacher']:.4f} | {r['retained']:.1%} | {r['speedup']:.2f}x "
              f"| {r['latency_speedup']:.2f}x | {r['student_params'] / 1e6:.1f}M / {r['teacher_params'] / 1e6:.1f}M |")  # fmt: skip
    if rows and "teacher_mean" in rows[0]:
        print(f"teachers: {rows[0]['single_teachers']}, mean {rows[0]['teacher_mean']:.4f}; ensemble "
              f"{rows[0]['teacher']:.4f}")  # fmt: skip
    print("(shared machine: teacher and student timed in pairs per batch in one process, order alternating)")


def _teacher_layers(folder: str) -> int:
    return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))["num_hidden_layers"]


if __name__ == "__main__":
    main()
