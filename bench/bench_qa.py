"""Extractive QA throughput: bertkit (QATask + Predictor) vs transformers (AutoModelForQuestionAnswering with
run_qa.py's feature preparation and post-processing), same weights, same SQuAD questions.

Usage: python bench/bench_qa.py [--model minilm] [--data ../shared/data/squad/dev-v1.1.json] [--questions 1000]
                                [--max-seq-length 384] [--doc-stride 128] [--batch-size 32] [--repeats 3]
                                [--threads N]

Both answer the first N questions of SQuAD v1.1 dev end to end (question + context -> answer text): windows of
384 tokens, n-best 20, max answer length 30, fp32 on CPU, same batch size and thread count. transformers runs as
its run_qa.py example does (fast tokenizer with stride / overflow / offsets, batches in data order padded to
the longest, n-best post-processing from offsets). Each library keeps its default window stride: bertkit's
doc_stride 128 is the step between windows (Google's meaning), transformers' stride 128 the overlap, so
bertkit makes at least as many windows; both counts are printed. The model is --model with a QA head (a
seeded random head when the checkpoint has none; pass a fine-tuned folder for meaningful answers); both load
the same weights. A second figure times the two models alone on identical batches of bertkit's windows.
Runs alternate so that load on a shared machine hits both alike; the best run of each is reported, with the
ratio and how often the two answers agree.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bertkit.data.readers.squad import read_squad
from bertkit.engine import featurize
from bertkit.inference.predictor import Predictor
from bertkit.model.heads import BertForQuestionAnswering
from bertkit.tasks.qa import QATask
from bertkit.tokenization import Tokenizer
from bertkit.weights.load import load_pretrained, model_folder, resolve_model_path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "dev-v1.1.json"


def hf_answers(model, tokenizer, examples, max_len: int, stride: int, batch_size: int, n_best: int = 20,
               max_answer: int = 30, windows: list[int] | None = None) -> list[str]:  # fmt: skip
    """transformers' run_qa.py path: prepare_validation_features, model, postprocess_qa_predictions."""
    enc = tokenizer([e.question.lstrip() for e in examples], [e.context for e in examples], truncation="only_second",
                    max_length=max_len, stride=stride, return_overflowing_tokens=True,
                    return_offsets_mapping=True)  # fmt: skip
    owners = enc.pop("overflow_to_sample_mapping")
    if windows is not None:
        windows.append(len(owners))
    offsets = enc.pop("offset_mapping")
    starts, ends = [], []
    with torch.inference_mode():
        for i in range(0, len(enc["input_ids"]), batch_size):
            rows = {k: v[i : i + batch_size] for k, v in enc.items()}
            batch = tokenizer.pad(rows, return_tensors="pt")
            out = model(**batch)
            for s, e, m in zip(out.start_logits, out.end_logits, batch["attention_mask"], strict=True):
                n = int(m.sum())
                starts.append(s[:n].numpy())
                ends.append(e[:n].numpy())
    by_example = collections.defaultdict(list)
    for f, owner in enumerate(owners):
        by_example[owner].append(f)
    answers = []
    for i, example in enumerate(examples):
        best, best_score = "", -np.inf
        for f in by_example[i]:
            seq = enc.sequence_ids(f)
            offs = [o if seq[k] == 1 else None for k, o in enumerate(offsets[f])]
            s_idx = np.argsort(starts[f])[-1 : -n_best - 1 : -1]
            e_idx = np.argsort(ends[f])[-1 : -n_best - 1 : -1]
            for s in s_idx:
                for e in e_idx:
                    if s >= len(offs) or e >= len(offs) or offs[s] is None or offs[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer:
                        continue
                    score = starts[f][s] + ends[f][e]
                    if score > best_score:
                        best_score, best = score, example.context[offs[s][0] : offs[e][1]]
        answers.append(best)
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--max-seq-length", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    torch.set_num_threads(args.threads)
    examples = list(read_squad(args.data))[: args.questions]
    torch.manual_seed(0)
    ours_model, report = load_pretrained(args.model, BertForQuestionAnswering)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ours_model.save_pretrained(folder)
        Tokenizer.from_pretrained(model_folder(resolve_model_path(args.model))).save_pretrained(folder)
        theirs = AutoModelForQuestionAnswering.from_pretrained(folder).eval()
        hf_tok = AutoTokenizer.from_pretrained(folder)
    ours_model.eval()  # Predictor also does this; the encoder-only loop needs it too
    task = QATask(doc_stride=args.doc_stride)
    predictor = Predictor(task, ours_model, Tokenizer.from_pretrained(model_folder(resolve_model_path(args.model))),
                          args.max_seq_length, args.batch_size, "cpu")  # fmt: skip
    print(f"{len(examples)} questions from {args.data}; model {args.model} ({report.model_class}); "
          f"max_seq_length {args.max_seq_length}; batch {args.batch_size}; {args.threads} threads; "
          f"torch {torch.__version__}")  # fmt: skip

    def run_ours() -> list[str]:
        return [p["answer"] for p in predictor.predict_examples(examples)]

    hf_windows: list[int] = []

    def run_theirs() -> list[str]:
        return hf_answers(
            theirs, hf_tok, examples, args.max_seq_length, 128, args.batch_size, windows=hf_windows
        )

    features = featurize(task, examples, predictor.tokenizer, args.max_seq_length)
    batches = [
        task.collate(features[i : i + args.batch_size]) for i in range(0, len(features), args.batch_size)
    ]

    def encoder_ours() -> None:
        with torch.inference_mode():
            for b in batches:
                ours_model(b["input_ids"], b["token_type_ids"], b["attention_mask"])

    def encoder_theirs() -> None:
        with torch.inference_mode():
            for b in batches:
                theirs(
                    input_ids=b["input_ids"],
                    token_type_ids=b["token_type_ids"],
                    attention_mask=b["attention_mask"],
                )

    run_ours(), run_theirs()  # warm-up
    times: dict[str, list[float]] = collections.defaultdict(list)
    answers: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for name, fn in (("bertkit", run_ours), ("transformers", run_theirs)):
            start = time.perf_counter()
            answers[name] = fn()
            times[name].append(time.perf_counter() - start)
        for name, fn in (("bertkit encoder", encoder_ours), ("transformers encoder", encoder_theirs)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    rates = {name: len(examples) / min(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:22s} {rates[name]:8.1f} questions/s  (runs: {', '.join(f'{x:.2f}s' for x in t)})")
    print(f"end to end, bertkit / transformers: {rates['bertkit'] / rates['transformers']:.2f}x "
          f"(windows: bertkit {len(features)}, transformers {hf_windows[-1]})")  # fmt: skip
    print(f"encoder only, same windows, bertkit / transformers: "
          f"{rates['bertkit encoder'] / rates['transformers encoder']:.2f}x")  # fmt: skip
    same = sum(a == b for a, b in zip(answers["bertkit"], answers["transformers"], strict=True))
    print(f"answers equal: {same}/{len(examples)}")


if __name__ == "__main__":
    main()
