"""CPU training with bertkit's dropout masks vs torch's (bernoulli_ and SDPA's math path), same batches.

    python bench/bench_dropout.py                          # MiniLM QA, SQuAD windows of 256, batch 16, bf16
    python bench/bench_dropout.py --max-seq-length 64 --precision fp32

Two identical copies of the model train on the same SQuAD windows: one with bertkit.model.dropout's CPU masks
(the default), one with torch's dropout (CPU_MASKS = False: F.dropout and SDPA's dropout_p, as before). Rounds
alternate between the two so that load on a shared machine hits both alike; each round times --steps steps
(forward, loss, backward, clipping at 1.0, fused AdamW). Prints the median step time of each, examples/s and the
ratio, then the mask alone for one batch's attention probabilities (bernoulli_ vs keep_mask).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from pathlib import Path

import torch

import bertkit.model.dropout as dropout_module
from bertkit.data.readers.squad import read_squad
from bertkit.engine import featurize
from bertkit.model.heads import BertForQuestionAnswering
from bertkit.tasks.qa import QATask
from bertkit.tokenization import Tokenizer
from bertkit.weights.load import load_pretrained, model_folder, resolve_model_path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "dev-v1.1.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per side")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    folder = model_folder(resolve_model_path(args.model))
    tokenizer = Tokenizer.from_pretrained(folder)
    task = QATask(max_query_length=48)
    n = args.batch_size * args.steps
    examples = list(read_squad(args.data))[:n]
    features = featurize(task, examples, tokenizer, args.max_seq_length)[:n]
    batches = [task.collate(features[i : i + args.batch_size]) for i in range(0, n, args.batch_size)]
    torch.manual_seed(0)
    base, _ = load_pretrained(folder, BertForQuestionAnswering)
    sides = {}
    for name in ("bertkit", "torch"):
        model = copy.deepcopy(base).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5, fused=True)
        sides[name] = (model, optimizer, [])
    autocast = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
        if args.precision == "bf16"
        else contextlib.nullcontext
    )

    def round_of(name: str) -> float:
        model, optimizer, _ = sides[name]
        dropout_module.CPU_MASKS = name == "bertkit"
        started = time.perf_counter()
        for batch in batches:
            with autocast():
                loss = task.loss(task.forward(model, batch), batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return (time.perf_counter() - started) / len(batches)

    for name in sides:  # warm-up round each, not timed
        round_of(name)
    for _ in range(args.rounds):
        for name in sides:
            sides[name][2].append(round_of(name))
    dropout_module.CPU_MASKS = True

    tokens = sum(int(b["attention_mask"].sum()) for b in batches) / len(batches)
    width = max(b["input_ids"].shape[1] for b in batches)
    print(
        f"MiniLM QA training on CPU, {args.threads} threads, {args.precision}: batches of {args.batch_size} SQuAD "
        f"windows (max_seq_length {args.max_seq_length}, {tokens:.0f} real tokens per batch on average, "
        f"widest {width}), {args.rounds} alternating rounds of {args.steps} steps per side"
    )
    medians = {}
    for name, (_, _, times) in sides.items():
        medians[name] = statistics.median(times)
        label = "bertkit dropout masks" if name == "bertkit" else "torch dropout (bernoulli_, SDPA math)"
        print(
            f"  {label:40s} median step {medians[name] * 1e3:8.1f} ms  "
            f"{args.batch_size / medians[name]:6.2f} examples/s  (rounds: "
            + ", ".join(f"{t * 1e3:.0f}" for t in times)
            + " ms)"
        )
    print(f"  speed-up: {medians['torch'] / medians['bertkit']:.2f}x")

    shape = (args.batch_size, base.config.num_attention_heads, width, width)
    probe = torch.empty(shape)
    timings: dict[str, list[float]] = {"bernoulli_": [], "keep_mask": []}
    for _ in range(5):
        started = time.perf_counter()
        probe.bernoulli_(0.9)
        timings["bernoulli_"].append(time.perf_counter() - started)
        started = time.perf_counter()
        dropout_module.keep_mask(shape, 0.1)
        timings["keep_mask"].append(time.perf_counter() - started)
    print(
        f"one attention-probability mask {shape}: "
        + ", ".join(f"{k} {statistics.median(v) * 1e3:.1f} ms" for k, v in timings.items())
    )


if __name__ == "__main__":
    main()
