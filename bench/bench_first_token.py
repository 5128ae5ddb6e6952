"""The last layer on the [CLS] rows alone (first_token_only, the default) vs on every token, same batches.

    python bench/bench_first_token.py                      # MiniLM: MRPC and SST-2 training steps, SST-2 dev predictions
    python bench/bench_first_token.py --threads 1 --models minilm,base
    python bench/bench_first_token.py --parts encode --models minilm,base   # CLS-pooled sentence vectors

Heads that read only position 0 (sequence classification, multiple choice) compute the last layer's out
projection, FFN and norms on one row per sequence (bertkit.model.bert, BertModel.forward); every_position() runs
the whole layer as before, with the same outputs and, in training, the same dropout masks. Both sides are one
model: rounds alternate between them so that load on a shared machine hits both alike. Printed per model:
- training: the median step (forward, loss, backward, fused AdamW; fp32) on batches of 32 MRPC pairs (max length
  128) and 32 SST-2 sentences (64), examples/s, the ratio;
- inference: SST-2 dev logits at batch 32 (all 872 sentences) and batch 1 (the first 200), prepare_for_inference,
  inference_mode, length-sorted batches as `bertkit predict` runs them: sentences/s, the ratio;
- encode: sentence vectors of the 872 SST-2 dev sentences with CLS pooling (bge-style models; pooler pooling runs
  the same way), FeatureExtractor.encode with its defaults (length-sorted batches of 8,192 tokens), sentences/s,
  the ratio.
Models: minilm (all-MiniLM-L6-v2) and base (BERT-base-shaped, 12 x 768, random init).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bertkit.data.collate import sorted_batches
from bertkit.data.examples import TextExample
from bertkit.engine import featurize
from bertkit.inference.features import FeatureExtractor
from bertkit.model.bert import every_position
from bertkit.model.heads import BertForSequenceClassification
from bertkit.prepare import prepare_for_inference
from bertkit.tasks import build_task
from bertkit.tokenization import Tokenizer
from bertkit.weights.load import load_pretrained, model_folder, resolve_model_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_infer import base_folder  # noqa: E402  (the same BERT-base-shaped random folder)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"


def tsv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]


def alternate(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median seconds per side over `rounds` rounds that take turns (one warm-up round each first)."""
    for run in sides.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, run in sides.items():
            times[name].append(run())
    return {name: statistics.median(t) for name, t in times.items()}


def mode(model: torch.nn.Module, name: str) -> contextlib.AbstractContextManager:
    return every_position(model) if name == "every token" else contextlib.nullcontext()


def train_steps(model: torch.nn.Module, task, batches: list, rounds: int) -> dict[str, float]:  # noqa: ANN001
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    model.train()

    def side(name: str) -> Callable[[], float]:
        def run() -> float:
            with mode(model, name):
                started = time.perf_counter()
                for batch in batches:
                    task.loss(task.forward(model, batch), batch).backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                return (time.perf_counter() - started) / len(batches)

        return run

    return alternate({name: side(name) for name in ("[CLS] rows", "every token")}, rounds)


def predictions(model: torch.nn.Module, task, features: list, batch_size: int, rounds: int) -> dict[str, float]:  # noqa: ANN001
    lengths = [len(f["input_ids"]) for f in features]
    batches = [task.collate([features[i] for i in idx]) for idx in sorted_batches(lengths, batch_size)]

    def side(name: str) -> Callable[[], float]:
        def run() -> float:
            with mode(model, name), torch.inference_mode():
                started = time.perf_counter()
                for batch in batches:
                    task.forward(model, batch)
                return len(features) / (time.perf_counter() - started)

        return run

    return alternate({name: side(name) for name in ("[CLS] rows", "every token")}, rounds)


def encodings(folder: Path, texts: list[str], rounds: int) -> dict[str, float]:
    extractor = FeatureExtractor.from_pretrained(folder, pooling="cls", normalize=True, device="cpu")
    vectors = {}

    def side(name: str) -> Callable[[], float]:
        def run() -> float:
            with mode(extractor.model, name):
                started = time.perf_counter()
                vectors[name] = extractor.encode(texts)
                return len(texts) / (time.perf_counter() - started)

        return run

    rates = alternate({name: side(name) for name in ("[CLS] rows", "every token")}, rounds)
    rates["max |difference|"] = float(abs(vectors["[CLS] rows"] - vectors["every token"]).max())
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm", help="comma-separated: minilm, base")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per side")
    parser.add_argument("--steps", type=int, default=4, help="training steps per round")
    parser.add_argument("--dev-sentences", type=int, default=872, help="SST-2 dev sentences per round, batch 32")
    parser.add_argument("--lone-sentences", type=int, default=200, help="SST-2 dev sentences per round, batch 1")
    parser.add_argument("--parts", default="train,predict,encode", help="comma-separated: train, predict, encode")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))

    minilm = model_folder(resolve_model_path("minilm"))
    tokenizer = Tokenizer.from_pretrained(minilm)
    task = build_task("classification", {"labels": ["0", "1"]})
    mrpc = [TextExample(r[3], r[4], r[0]) for r in tsv(DATA / "MRPC" / "train.tsv")[: 32 * args.steps]]
    sst2 = [TextExample(r[0], None, r[1]) for r in tsv(DATA / "SST-2" / "train.tsv")[: 32 * args.steps]]
    dev = [TextExample(r[0], None, r[1]) for r in tsv(DATA / "SST-2" / "dev.tsv")[: args.dev_sentences]]
    print(f"first_token_only on the CPU, {args.threads} threads, fp32; {args.rounds} alternating rounds per side")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            folder = minilm if name == "minilm" else base_folder(minilm, Path(tmp) / "base")
            torch.manual_seed(0)
            base, _ = load_pretrained(folder, BertForSequenceClassification, labels=("0", "1"))
            shape = f"{base.config.num_hidden_layers} x {base.config.hidden_size}"
            print(f"{name} ({shape}):")
            if "train" in parts:
                for label, examples, length in (("MRPC pairs", mrpc, 128), ("SST-2 sentences", sst2, 64)):
                    features = featurize(task, examples, tokenizer, length)
                    batches = [task.collate(features[i : i + 32]) for i in range(0, len(features), 32)]
                    tokens = sum(int(b["attention_mask"].sum()) for b in batches) / len(batches)
                    step = train_steps(copy.deepcopy(base), task, batches, args.rounds)
                    first, every = step["[CLS] rows"], step["every token"]
                    print(f"  train, batches of 32 {label} ({tokens:.0f} tokens): step {first * 1e3:.0f} ms with "
                          f"[CLS] rows, {every * 1e3:.0f} ms with every token: {every / first:.2f}x")  # fmt: skip
            if "predict" in parts:
                model = prepare_for_inference(copy.deepcopy(base))
                features = featurize(task, dev, tokenizer, 128)
                for batch_size, n in ((32, len(features)), (1, args.lone_sentences)):
                    rate = predictions(model, task, features[:n], batch_size, args.rounds)
                    first, every = rate["[CLS] rows"], rate["every token"]
                    print(f"  predict SST-2 dev ({n} sentences), batch {batch_size}: {first:.1f} sentences/s "
                          f"with [CLS] rows, {every:.1f} with every token: {first / every:.2f}x")  # fmt: skip
            if "encode" in parts:
                rate = encodings(folder, [e.text for e in dev], args.rounds)
                first, every = rate["[CLS] rows"], rate["every token"]
                print(f"  encode SST-2 dev ({len(dev)} sentences), CLS pooling: {first:.1f} sentences/s with "
                      f"[CLS] rows, {every:.1f} with every token: {first / every:.2f}x; max |difference| "
                      f"{rate['max |difference|']:.1e}")  # fmt: skip

if __name__ == "__main__":
    main()
