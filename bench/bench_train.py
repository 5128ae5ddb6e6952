"""Fine-tuning throughput: bertkit vs transformers' Trainer on the same SST-2 examples and hyperparameters.

Each framework trains in its own child process (so peak RSS is its own), then both are evaluated on SST-2 dev.
Defaults are the reference recipe: the first 8,000 SST-2 training examples, 1 epoch, batch 32, lr 5e-5,
max length 128, seed 1, linear decay without warmup or weight decay (Trainer's defaults), clipping at 1.0.

    python bench/bench_train.py                      # both, fp32 for both
    python bench/bench_train.py --precision bf16     # bertkit with bf16 autocast (Trainer stays fp32)
    python bench/bench_train.py --trainer-precision bf16
    python bench/bench_train.py --seeds 1,2,3             # both per seed, then mean ± std

Prints examples/second for both (training steps only: bertkit's step time, the Trainer's train_runtime), their
ratio (also by the whole train() call), peak RSS and both dev accuracies; on CUDA also the model FLOPs utilisation
(--peak-tflops, or a known value for the GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEAK_TFLOPS = {
    "H100": 989.0,
    "H200": 989.0,
    "A100": 312.0,
    "L4": 121.0,
    "A10": 125.0,
    "V100": 125.0,
    "T4": 65.0,
}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data-dir", default=str(REPO / "examples/data/sst2"), help="folder with SST-2 train.tsv/dev.tsv"
    )
    p.add_argument("--model", default="minilm")
    p.add_argument("--examples", type=int, default=8000, help="first N training examples")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seeds", help="comma list: repeat both runs per seed and print mean ± std (seed variance is "
                   "about a point on this recipe, so equal accuracy needs several seeds)")  # fmt: skip
    p.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="bertkit's precision"
    )
    p.add_argument("--trainer-precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads for both (default: torch's)"
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument(
        "--peak-tflops", type=float, default=None, help="accelerator peak for MFU (default: by GPU name)"
    )
    p.add_argument("--only", choices=["bertkit", "trainer"], help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--skip", choices=["bertkit", "trainer"], help="run only the other framework")
    p.add_argument("--parallel", action="store_true",
                   help="train both at the same time (use with --threads 1): on a shared machine both then see the "
                   "same load, which sequential runs do not")  # fmt: skip
    return p.parse_args()


def load_examples(args: argparse.Namespace):  # noqa: ANN201
    from bertkit.data.validate import split_valid
    from bertkit.tasks import get_preset, read_split

    preset = get_preset("sst2")
    train, _ = split_valid(read_split(preset, args.data_dir, "train"))
    dev, _ = split_valid(read_split(preset, args.data_dir, "dev"))
    if len(train) < args.examples:
        raise SystemExit(
            f"{args.data_dir}/train.tsv has {len(train)} examples, fewer than --examples {args.examples}"
        )
    return train[: args.examples], dev


def model_flops_per_token(config) -> float:  # noqa: ANN001
    """Training FLOPs per token: 6 x (non-embedding parameters), as in Kaplan et al. / PaLM's MFU."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return 6.0 * layers * (4 * h * h + 2 * h * i)


def run_bertkit(args: argparse.Namespace) -> dict:
    import torch

    from bertkit.tasks.classification import ClassificationTask
    from bertkit.tokenization import Tokenizer
    from bertkit.training.config import TrainConfig
    from bertkit.training.loop import evaluate, train
    from bertkit.weights.load import model_folder, resolve_model_path

    train_ex, dev_ex = load_examples(args)
    task = ClassificationTask(labels=("0", "1"))
    model, _ = task.build_model(args.model)
    tok = Tokenizer.from_pretrained(model_folder(resolve_model_path(args.model)))
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, max_seq_length=args.max_seq_length,
                         seed=args.seed, warmup_ratio=0.0, weight_decay=0.0, precision=args.precision, device=args.device,
                         progress=False, resume=False, save_best=False, log_steps=50)  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = train(task, model, tok, train_ex, None, config, out)
        wall = time.perf_counter() - t0
        metrics, _ = evaluate(task, model, tok, dev_ex, config)
    tokens = sum(len(ids) for ids in tok([e.text for e in train_ex], max_length=args.max_seq_length,
                                          padding=False, return_tensors=None)["input_ids"])  # fmt: skip
    return {
        "examples_per_second": result.examples_per_second,
        "train_seconds": result.train_seconds,
        "wall_seconds": wall,
        "accuracy": metrics["accuracy"],
        "tokens_per_epoch": tokens,
        "flops_per_token": model_flops_per_token(model.config),
        "device": str(next(model.parameters()).device),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def run_trainer(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from bertkit.weights.load import model_folder, resolve_model_path

    train_ex, dev_ex = load_examples(args)
    folder = model_folder(resolve_model_path(args.model))
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)

    def encode(examples: list) -> list[dict]:
        enc = tok([e.text for e in examples], truncation=True, max_length=args.max_seq_length)
        return [{"input_ids": ids, "attention_mask": m, "token_type_ids": t, "labels": int(e.label)}
                for ids, m, t, e in zip(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], examples,
                                        strict=True)]  # fmt: skip

    train_set, dev_set = encode(train_ex), encode(dev_ex)
    use_cpu = args.device == "cpu" or not torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(output_dir=out, per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
                                  num_train_epochs=args.epochs, learning_rate=args.lr, seed=args.seed, report_to=[],
                                  save_strategy="no", eval_strategy="no", logging_steps=50, disable_tqdm=True,
                                  use_cpu=use_cpu, bf16=args.trainer_precision == "bf16",
                                  fp16=args.trainer_precision == "fp16", dataloader_num_workers=0)  # fmt: skip
        trainer = Trainer(
            model=model, args=targs, train_dataset=train_set, data_collator=DataCollatorWithPadding(tok)
        )
        t0 = time.perf_counter()
        out_metrics = trainer.train().metrics
        wall = time.perf_counter() - t0
        logits = trainer.predict(dev_set).predictions
    accuracy = float((np.argmax(logits, -1) == np.array([d["labels"] for d in dev_set])).mean())
    return {
        "examples_per_second": out_metrics["train_samples_per_second"],
        "train_seconds": out_metrics["train_runtime"],
        "wall_seconds": wall,
        "accuracy": accuracy,
    }


def child(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_bertkit(args) if args.only == "bertkit" else run_trainer(args)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["threads"] = torch.get_num_threads()
    Path(args.result).write_text(json.dumps(result))


def start(which: str, argv: list[str], tmp: Path) -> tuple[subprocess.Popen, Path]:
    """One framework in a child process, writing its figures to a JSON file."""
    path = tmp / f"{which}.json"
    cmd = [sys.executable, __file__, *argv, "--only", which, "--result", str(path)]
    return subprocess.Popen(cmd, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}), path


def collect(which: str, proc: subprocess.Popen, path: Path) -> dict | None:
    """The child's figures; None (after its traceback) when it failed."""
    if proc.wait() != 0:
        print(f"{which} failed (see above)", flush=True)
        return None
    return json.loads(path.read_text())


def report_line(name: str, precision: str, r: dict) -> str:
    return (f"{name:8s} {precision:5s} {r['examples_per_second']:8.1f} examples/s  train {r['train_seconds']:7.1f} s  "
            f"(whole train() call {r['wall_seconds']:7.1f} s)  peak RSS {r['peak_rss_mb']:7.0f} MB  "
            f"dev accuracy {r['accuracy']:.4f}  ({r['threads']} threads)")  # fmt: skip


def run_seed(args: argparse.Namespace, seed: int) -> dict[str, dict]:
    """Both frameworks (one after the other, or together with --parallel) with this seed."""
    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a in ("--seeds", "--seed"):
            skip = True
        elif a != "--parallel" and not a.startswith(("--seeds=", "--seed=")):
            argv.append(a)
    argv += ["--seed", str(seed)]
    results = {}
    names = [w for w in ("bertkit", "trainer") if args.skip != w]
    with tempfile.TemporaryDirectory() as tmp:
        running = []
        for which in names:
            print(f"--- training with {which}, seed {seed} ...", flush=True)
            running.append((which, *start(which, argv, Path(tmp))))
            if not args.parallel:
                results[which] = collect(*running.pop())
        for job in running:
            results[job[0]] = collect(*job)
    return {k: v for k, v in results.items() if v is not None}


def mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, (sum((v - m) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5


def main() -> None:
    args = parse()
    if args.only:
        child(args)
        return
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    runs = {seed: run_seed(args, seed) for seed in seeds}
    print(f"\nSST-2: first {args.examples} training examples, {args.epochs:g} epoch(s), batch {args.batch_size}, "
          f"lr {args.lr:g}, max length {args.max_seq_length}; dev 872 sentences")  # fmt: skip
    for seed, results in runs.items():
        for name, r in results.items():
            print(f"seed {seed}  " + report_line(name, args.precision if name == "bertkit" else args.trainer_precision, r))
        if len(results) == 2:
            b, t = results["bertkit"], results["trainer"]
            print(f"seed {seed}  throughput ratio bertkit / Trainer: {b['examples_per_second'] / t['examples_per_second']:.2f}x "
                  f"({t['wall_seconds'] / b['wall_seconds']:.2f}x by the whole train() call, bertkit's tokenization "
                  f"included); accuracy difference {100 * (b['accuracy'] - t['accuracy']):+.1f} points")  # fmt: skip
    complete = [r for r in runs.values() if len(r) == 2]
    if len(complete) > 1:
        for name in ("bertkit", "trainer"):
            acc, speed = (mean_std([r[name][k] for r in complete]) for k in ("accuracy", "examples_per_second"))
            print(f"{name:8s} over {len(complete)} seeds: dev accuracy {acc[0]:.4f} ± {acc[1]:.4f}, "
                  f"{speed[0]:.1f} ± {speed[1]:.1f} examples/s")  # fmt: skip
        ratio = mean_std([r["bertkit"]["examples_per_second"] / r["trainer"]["examples_per_second"] for r in complete])
        diff = mean_std([100 * (r["bertkit"]["accuracy"] - r["trainer"]["accuracy"]) for r in complete])
        print(f"mean throughput ratio {ratio[0]:.2f}x; mean accuracy difference {diff[0]:+.2f} ± {diff[1]:.2f} points")
    b = next((r["bertkit"] for r in runs.values() if "bertkit" in r), None)
    if b and b.get("gpu"):
        peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in b["gpu"]), None)
        achieved = b["tokens_per_epoch"] * args.epochs * b["flops_per_token"] / b["train_seconds"] / 1e12
        mfu = (
            f"{100 * achieved / peak:.1f}% of {peak:g} TFLOP/s"
            if peak
            else "unknown peak (pass --peak-tflops)"
        )
        print(f"bertkit on {b['gpu']}: {achieved:.1f} model TFLOP/s, MFU {mfu}")
    elif b:
        print("MFU: reported on CUDA only")


if __name__ == "__main__":
    main()
