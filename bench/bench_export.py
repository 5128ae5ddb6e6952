"""ONNX export and int8 quantization on a fine-tuned SST-2 classifier: parity, dev accuracy and speed per backend.

    python bench/bench_export.py                          # fine-tunes all-MiniLM-L6-v2 on an SST-2 subset first
    python bench/bench_export.py --model runs/sst2        # or any fine-tuned SST-2 folder

Backends: PyTorch fp32, PyTorch dynamic int8 (nn.Linear), onnxruntime fp32, onnxruntime dynamic int8, and
PyTorch with bf16 weights (`--precision bf16`) where the CPU computes bf16 natively.
Printed per backend: SST-2 dev accuracy (872 sentences) and its change against PyTorch fp32 (goal: int8 loses
<= 1 point), max |logit - PyTorch logit| over the whole dev set (goal for ONNX fp32: <= 1e-4), dev throughput
(sentences/s, batch 64, the median of --repeats passes) and batch-1 latency (p50). Every backend runs at its
default thread wait policy; they alternate pass by pass and in blocks of 10 batch-1 calls, each after a pause,
so a swing in the machine's speed hits all alike and no backend's spinning threads slow the next. Reads
../shared/data/glue/SST-2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SST2 = REPO.parent / "shared" / "data" / "glue" / "SST-2"
SETTLE = 0.05  # s of quiet before each timed pass or block: longer than libgomp's idle spinning
LATENCY_TEXT = "the film is a charming and often affecting journey through a world of wonder"


def fine_tune(out: Path, examples: int, seq_len: int) -> None:
    """A quick SST-2 classifier through `bertkit train` (recipe printed)."""
    cmd = [
        sys.executable,
        "-m",
        "bertkit.cli.main",
        "train",
        "--task",
        "sst2",
        "--data-dir",
        str(SST2),
        "--model",
        "minilm",
        "--output-dir",
        str(out),
        "--max-train-examples",
        str(examples),
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--lr",
        "5e-5",
        "--max-seq-length",
        str(seq_len),
        "--seed",
        "1",
    ]
    print("fine-tuning:", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def dev_set() -> tuple[list[dict], list[str]]:
    lines = (SST2 / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    rows = [line.split("\t") for line in lines if line.strip()]
    return [{"text": r[0]} for r in rows], [r[1] for r in rows]


def logits_of(model, tokenizer, texts: list[str], max_length: int):
    """(N, L) logits of the model on the texts, in batches of 64."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = dict(tokenizer(texts[start : start + 64], max_length=max_length))
            out.append(model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]).float())
    return torch.cat(out)


def quality(name: str, predictor, inputs: list[dict], gold: list[str], reference) -> dict:
    """Dev accuracy and max |logit - reference| of one backend (untimed)."""
    predictions = predictor.predict(inputs)
    accuracy = sum(p["label"] == g for p, g in zip(predictions, gold, strict=True)) / len(gold)
    logits = logits_of(
        predictor.model, predictor.tokenizer, [x["text"] for x in inputs], predictor.max_seq_length
    )
    diff = float((logits - reference).abs().max()) if reference is not None else 0.0
    return {"name": name, "accuracy": accuracy, "max_diff": diff, "logits": logits}


def speeds(
    predictors: dict, inputs: list[dict], repeats: int, latency_calls: int
) -> dict[str, tuple[float, float]]:
    """name -> (dev sentences/s, the median of `repeats` passes; batch-1 p50 ms). Every backend runs at its
    default thread wait policy, as a user gets it (libgomp's threads spin ~8 ms after a call). The backends
    alternate pass by pass (the order reversed every round) and in blocks of 10 batch-1 calls, each pass and
    block after SETTLE of quiet, so a swing in the machine's speed hits all alike and no backend's spinning
    threads slow the next."""
    names = list(predictors)
    for p in predictors.values():
        p.predict(inputs[:64])  # warm up
    passes: dict[str, list[float]] = {n: [] for n in names}
    for round_ in range(repeats):
        for n in names if round_ % 2 == 0 else names[::-1]:
            time.sleep(SETTLE)
            start = time.perf_counter()
            predictors[n].predict(inputs)
            passes[n].append(time.perf_counter() - start)
    single = [{"text": LATENCY_TEXT}]
    calls: dict[str, list[float]] = {n: [] for n in names}
    for n in names:
        predictors[n].predict(single)
    for i in range(0, latency_calls, 10):
        for n in names if (i // 10) % 2 == 0 else names[::-1]:
            time.sleep(SETTLE)
            for _ in range(min(10, latency_calls - i)):
                start = time.perf_counter()
                predictors[n].predict(single)
                calls[n].append(time.perf_counter() - start)
    return {
        n: (len(inputs) / statistics.median(passes[n]), 1000 * statistics.median(calls[n])) for n in names
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model", default=None, help="fine-tuned SST-2 folder (default: fine-tune one into --work-dir)"
    )
    p.add_argument("--work-dir", default=str(REPO / "runs" / "bench_export"))
    p.add_argument("--train-examples", type=int, default=8000)
    p.add_argument("--max-seq-length", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for every backend (default: all)")
    p.add_argument("--repeats", type=int, default=3, help="timed dev passes per backend (median)")
    p.add_argument("--latency-calls", type=int, default=100, help="batch-1 calls per backend (p50)")
    args = p.parse_args()
    import torch

    from bertkit import runtime
    from bertkit.export.onnx import export_onnx
    from bertkit.export.quantize import quantize_torch
    from bertkit.export.runtime import OnnxModel
    from bertkit.inference.predictor import Predictor

    runtime.set_threads(args.threads)
    work = Path(args.work_dir)
    model_dir = Path(args.model) if args.model else work / "sst2-minilm"
    if not (model_dir / "bertkit.json").is_file():
        fine_tune(model_dir, args.train_examples, args.max_seq_length)
    print(
        f"model {model_dir}; {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    start = time.perf_counter()
    report = export_onnx(model_dir, work / "onnx", quantize="int8")
    print(f"{report} ({time.perf_counter() - start:.1f} s)")
    sizes = {f.name: f.stat().st_size / 2**20 for f in (report.onnx_path, report.int8_path)}
    print("sizes: " + ", ".join(f"{k} {v:.1f} MiB" for k, v in sizes.items()))

    inputs, gold = dev_set()
    base = Predictor.from_pretrained(model_dir, device="cpu", batch_size=64)
    length = base.max_seq_length
    predictors = {"pytorch fp32": base}
    variants = (
        ("pytorch int8 (dynamic)", quantize_torch(base.model)),
        ("onnxruntime fp32", OnnxModel(report.onnx_path, threads=args.threads)),
        ("onnxruntime int8 (dynamic)", OnnxModel(report.int8_path, threads=args.threads)),
    )
    for name, model in variants:
        predictors[name] = Predictor(base.task, model, base.tokenizer, length, batch_size=64, device="cpu")
    if runtime.native_bf16():  # `--precision bf16`: bf16 weights packed once, native AMX / AVX-512-BF16 kernels
        predictors["pytorch bf16 weights"] = Predictor.from_pretrained(
            model_dir, device="cpu", batch_size=64, precision="bf16"
        )
    rows = [quality("pytorch fp32", base, inputs, gold, None)]
    reference = rows[0]["logits"]
    rows += [quality(n, p, inputs, gold, reference) for n, p in list(predictors.items())[1:]]
    timed = speeds(predictors, inputs, args.repeats, args.latency_calls)
    for r in rows:
        r["per_s"], r["p50_ms"] = timed[r["name"]]
    print(f"\nSST-2 dev ({len(gold)} sentences, max_seq_length {length}):")
    print(f"{'backend':28} {'accuracy':>9} {'change':>8} {'max|dlogit|':>12} {'sent/s':>8} {'b1 p50 ms':>10}")
    for r in rows:
        change = 100 * (r["accuracy"] - rows[0]["accuracy"])
        print(
            f"{r['name']:28} {100 * r['accuracy']:8.2f}% {change:+7.2f}p {r['max_diff']:12.2e} "
            f"{r['per_s']:8.1f} {r['p50_ms']:10.2f}"
        )
    onnx_ok = rows[2]["max_diff"] <= 1e-4
    int8_ok = all(rows[0]["accuracy"] - r["accuracy"] <= 0.01 for r in (rows[1], rows[3]))
    print(
        f"\nONNX fp32 parity <= 1e-4: {'yes' if onnx_ok else 'NO'}; int8 loses <= 1 point: {'yes' if int8_ok else 'NO'}"
    )
    return 0 if onnx_ok and int8_ok else 1


if __name__ == "__main__":
    sys.exit(main())
