"""Benchmark bertkit's Tokenizer against transformers' BertTokenizerFast on SST-2 dev sentences.

    python bench/bench_tokenizer.py                  # 872 sentences x 10, whole list in one batch
    python bench/bench_tokenizer.py --repeat 50 --batch-size 32 --threads 1

Both run in this process on the same Rust ``tokenizers`` library, so they share its thread pool
(``RAYON_NUM_THREADS``; ``--threads`` sets it before the library loads). Two measurements, each the
best of ``--rounds`` alternating runs, as sentences per second of wall time and as process CPU time per
sentence (steadier on a shared machine):

- tensors: ``tokenizer(texts)`` vs ``BertTokenizerFast(texts, padding=True, return_tensors="pt")``;
- encodings: ``tokenizer.encode_batch(texts)`` (ids, tokens, offsets, word ids, ...) vs
  ``BertTokenizerFast(texts, return_offsets_mapping=True)``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"


def read_sst2(path: Path) -> list[str]:
    """Sentences of a GLUE SST-2 tsv (header line, ``sentence<TAB>label``)."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines if line]


def measure(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(sentences per second of wall time, microseconds of process CPU time per sentence) for one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return n / (time.perf_counter() - wall), (time.process_time() - cpu) / n * 1e6


def in_batches(fn: Callable[[list[str]], object], texts: list[str], size: int) -> Callable[[], None]:
    def run() -> None:
        for i in range(0, len(texts), size):
            fn(texts[i : i + size])

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data/glue/SST-2/dev.tsv")
    parser.add_argument("--vocab", type=Path, default=SHARED / "models/vocab/bert-base-uncased-vocab.txt")
    parser.add_argument("--repeat", type=int, default=10, help="copies of the 872 sentences")
    parser.add_argument("--batch-size", type=int, default=0, help="0: the whole list in one batch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="RAYON_NUM_THREADS for both")
    args = parser.parse_args()
    if args.threads is not None:
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)

    import torch
    from transformers import BertTokenizerFast

    from bertkit.tokenization import Tokenizer

    texts = read_sst2(args.data) * args.repeat
    ours = Tokenizer.from_vocab(args.vocab, do_lower_case=True)
    theirs = BertTokenizerFast(str(args.vocab), do_lower_case=True)
    size = args.batch_size or len(texts)
    same = torch.equal(
        ours(texts)["input_ids"], theirs(texts, padding=True, return_tensors="pt")["input_ids"]
    )
    print(
        f"{len(texts)} sentences, batch {size}; RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'unset')}, "
        f"{os.cpu_count()} CPUs; identical input_ids: {same}"
    )
    cases = {
        "tensors": (lambda b: ours(b), lambda b: theirs(b, padding=True, return_tensors="pt")),
        "encodings": (lambda b: ours.encode_batch(b), lambda b: theirs(b, return_offsets_mapping=True)),
    }
    for name, (mine, other) in cases.items():
        best = {"bertkit": (0.0, float("inf")), "transformers fast": (0.0, float("inf"))}
        for _ in range(args.rounds):  # alternate, so both see the same machine load
            for who, fn in (("bertkit", mine), ("transformers fast", other)):
                rate, cpu = measure(in_batches(fn, texts, size), len(texts))
                best[who] = (max(best[who][0], rate), min(best[who][1], cpu))
        (ours_rate, ours_cpu), (their_rate, their_cpu) = best.values()
        print(
            f"{name:9}  bertkit {ours_rate:8,.0f} sent/s ({ours_cpu:5.1f} us CPU/sent)   "
            f"transformers fast {their_rate:8,.0f} sent/s ({their_cpu:5.1f} us CPU/sent)   "
            f"ratio {ours_rate / their_rate:.2f}x (CPU {their_cpu / ours_cpu:.2f}x)"
        )


if __name__ == "__main__":
    main()
