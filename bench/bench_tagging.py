"""Tagging (NER) throughput: bertkit's tagger vs transformers' AutoModelForTokenClassification, same data.

Usage: python bench/bench_tagging.py [--model minilm] [--data-dir ../shared/data/conll2003]
                                     [--train-sentences 512] [--predict-sentences 1000] [--batch-size 16]
                                     [--max-seq-length 128] [--repeats 2] [--threads N]

Training: the same CoNLL-2003 sentences, in the same batches (one length-grouped plan), through
  - bertkit: TaggingTask (softmax head, then the CRF head) forward + loss + backward + AdamW step;
  - transformers: AutoModelForTokenClassification with labels on first pieces (-100 elsewhere, run_ner's
    recipe) on the same padded batches, forward + loss + backward + AdamW step.
  The runners alternate batch by batch (the first two batches are warm-up), so machine load hits all alike;
  the total over --repeats passes is reported in sentences/second.
Prediction: raw dev sentences (text) -> entities with character offsets:
  - bertkit: Predictor.predict on {"text": ...} (word split, windows, forward, decode, offsets);
  - transformers: pipeline("token-classification", aggregation_strategy="first"), the same fine-tuned weights
    (the folder bertkit saved), batch size equal; they alternate in chunks of 100 sentences.
  Also prints how often the two return the same entity spans.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch

from bertkit.data.collate import shuffled_batches
from bertkit.data.readers.conll import read_conll
from bertkit.engine import featurize
from bertkit.inference.predictor import Predictor
from bertkit.tasks.tagging import TaggingTask
from bertkit.tokenization import Tokenizer
from bertkit.training.checkpoint import save_model_folder
from bertkit.training.config import TrainConfig
from bertkit.training.optim import build_optimizer
from bertkit.weights.load import model_folder, resolve_model_path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003"


def hf_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our collated batch as transformers' inputs: labels at the first pieces, -100 elsewhere."""
    labels = torch.full_like(batch["input_ids"], -100)
    rows = torch.arange(labels.shape[0])[:, None].expand_as(batch["label_positions"])
    mask = batch["label_mask"]
    labels[rows[mask], batch["label_positions"][mask]] = batch["label_ids"][mask]
    return {"input_ids": batch["input_ids"], "token_type_ids": batch["token_type_ids"],
            "attention_mask": batch["attention_mask"], "labels": labels}  # fmt: skip


def interleaved(steps: dict, batches: list, repeats: int) -> dict[str, float]:
    """Seconds per runner over `repeats` passes; runners alternate batch by batch, so load hits all alike.

    The first two batches of the first pass are warm-up and not timed.
    """
    seconds = dict.fromkeys(steps, 0.0)
    for r in range(repeats):
        for i, batch in enumerate(batches):
            for name, step in steps.items():
                start = time.perf_counter()
                step(batch)
                if r or i >= 2:
                    seconds[name] += time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--train-sentences", type=int, default=512)
    parser.add_argument("--predict-sentences", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    from transformers import AutoModelForTokenClassification, pipeline

    torch.set_num_threads(args.threads)
    folder = model_folder(resolve_model_path(args.model))
    train = list(read_conll(args.data_dir / "train.txt"))[: args.train_sentences]
    dev = list(read_conll(args.data_dir / "valid.txt"))[: args.predict_sentences]
    tok = Tokenizer.from_pretrained(folder)
    task = TaggingTask().prepare(train)
    features = featurize(task, train, tok, args.max_seq_length)
    plan = shuffled_batches([len(f["input_ids"]) for f in features], args.batch_size, seed=1)
    batches = [task.collate([features[i] for i in idx]) for idx in plan]
    n_timed = len(features) * args.repeats - sum(len(idx) for idx in plan[:2])
    print(f"{len(train)} training sentences in {len(batches)} batches of {args.batch_size} (first 2 untimed), {args.repeats} passes; "
          f"max_seq_length {args.max_seq_length}; {args.threads} threads; model {folder}; torch {torch.__version__}")  # fmt: skip

    trained = {}

    def ours(head: str):  # noqa: ANN202
        t = TaggingTask(labels=task.labels, head=head)
        model, _ = t.build_model(str(folder))
        trained[head] = model
        model.train()
        opt = build_optimizer(model, lr=5e-5, weight_decay=0.01, lr_scales=t.lr_scales())

        def step(batch: dict) -> None:
            t.loss(t.forward(model, batch), batch).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    def theirs():  # noqa: ANN202
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForTokenClassification.from_pretrained(folder, num_labels=len(task.labels))
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
        converted = {id(b): hf_batch(b) for b in batches}

        def step(batch: dict) -> None:
            model(**converted[id(batch)]).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    steps = {"bertkit softmax": ours("softmax"), "bertkit crf": ours("crf"), "transformers": theirs()}
    times = interleaved(steps, batches, args.repeats)
    rates = {name: n_timed / t for name, t in times.items()}
    print("training (forward + loss + backward + AdamW):")
    for name, t in times.items():
        print(f"  {name:18s} {rates[name]:8.1f} sentences/s  ({t:.1f}s)")
    print(f"  ratio bertkit softmax / transformers: {rates['bertkit softmax'] / rates['transformers']:.2f}x")
    print(f"  ratio bertkit crf / transformers:     {rates['bertkit crf'] / rates['transformers']:.2f}x")

    # ---- prediction: the same fine-tuned weights, raw text in, entities out ----
    with tempfile.TemporaryDirectory() as tmp:
        model = trained["softmax"].eval()  # trained on the batches above, so entities come out
        save_model_folder(tmp, model, tok, task, TrainConfig(max_seq_length=args.max_seq_length))
        texts = [e.text for e in dev]
        predictor = Predictor.from_pretrained(tmp, batch_size=args.batch_size * 2, device="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hf = pipeline("token-classification", model=tmp, aggregation_strategy="first", device="cpu")
        inputs = [{"text": t} for t in texts]
        predictor.predict(inputs[:64]), hf(texts[:64], batch_size=args.batch_size * 2)  # warm-up
        ptimes = {"bertkit Predictor": 0.0, "transformers pipeline": 0.0}
        for _ in range(args.repeats):
            a, b = [], []
            for i in range(0, len(texts), 100):  # alternate in chunks, so load hits both alike
                t0 = time.perf_counter()
                a += predictor.predict(inputs[i : i + 100])
                ptimes["bertkit Predictor"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                b += hf(texts[i : i + 100], batch_size=args.batch_size * 2)
                ptimes["transformers pipeline"] += time.perf_counter() - t0
    prates = {name: len(texts) * args.repeats / t for name, t in ptimes.items()}
    same = sum(
        {(e["start"], e["end"], e["type"]) for e in x["entities"]}
        == {(e["start"], e["end"], e["entity_group"]) for e in y}
        for x, y in zip(a, b, strict=True)
    )
    print(
        f"prediction ({len(texts)} dev sentences as raw text -> entities with offsets, batch {args.batch_size * 2}):"
    )
    for name, t in ptimes.items():
        print(f"  {name:22s} {prates[name]:8.1f} sentences/s  ({t:.1f}s)")
    print(
        f"  ratio bertkit / transformers: {prates['bertkit Predictor'] / prates['transformers pipeline']:.2f}x"
    )
    print(f"  sentences with identical entity spans: {same}/{len(texts)}")


if __name__ == "__main__":
    main()
