"""Encode throughput: bertkit's FeatureExtractor.encode vs sentence-transformers' encode, same model and sentences.

Usage: python bench/bench_encode.py [--model minilm] [--data ../shared/data/glue/SST-2/dev.tsv]
                                    [--batch-size 32] [--repeats 3] [--threads N]

Both encode every sentence of SST-2 dev (872) with all-MiniLM-L6-v2: mean pooling, L2-normalised, max 256
tokens (the model's sentence-transformers settings), fp32 on CPU, the same batch size and thread count.
Runs alternate (bertkit, sentence-transformers, ...) so that load on a shared machine hits both alike; the
best run of each is reported, with the ratio and the largest cosine gap between the two outputs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bertkit.inference.features import FeatureExtractor
from bertkit.weights.load import model_folder, resolve_model_path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue" / "SST-2" / "dev.tsv"


def read_sentences(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [line.rsplit("\t", 1)[0] for line in lines if line.strip()]


def timed(fn) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    sentences = read_sentences(args.data)
    folder = model_folder(resolve_model_path(args.model))
    ours = FeatureExtractor.from_pretrained(folder, device="cpu")
    theirs = SentenceTransformer(str(folder), device="cpu")
    print(
        f"{len(sentences)} sentences from {args.data}; model {folder}; pooling {ours.pooling.value}, "
        f"normalize {ours.normalize}, max_length {ours.max_length} (sentence-transformers: "
        f"{theirs.max_seq_length}); batch {args.batch_size}; {args.threads} threads; torch {torch.__version__}"
    )

    def run_ours() -> np.ndarray:
        return ours.encode(sentences, batch_size=args.batch_size)

    def run_theirs() -> np.ndarray:
        return theirs.encode(sentences, batch_size=args.batch_size, convert_to_numpy=True)

    run_ours(), run_theirs()  # warm-up
    times: dict[str, list[float]] = {"bertkit": [], "sentence-transformers": []}
    outputs = {}
    for _ in range(args.repeats):
        for name, fn in (("bertkit", run_ours), ("sentence-transformers", run_theirs)):
            seconds, outputs[name] = timed(fn)
            times[name].append(seconds)
    a, b = outputs["bertkit"], outputs["sentence-transformers"]
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    rates = {name: len(sentences) / min(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:22s} {rates[name]:8.1f} sentences/s  (runs: {', '.join(f'{x:.2f}s' for x in t)})")
    print(
        f"speed-up bertkit / sentence-transformers: {rates['bertkit'] / rates['sentence-transformers']:.2f}x"
    )
    print(f"min cosine between the two outputs: {cosine.min():.7f}")


if __name__ == "__main__":
    main()
