"""Encode throughput: bertkit's FeatureExtractor.encode vs sentence-transformers' encode, same model and sentences.

Usage: python bench/bench_encode.py [--model minilm] [--data ../shared/data/glue/SST-2/dev.tsv]
                                    [--max-batch-tokens 8192] [--st-batch-sizes 32,128,512] [--repeats 3]
                                    [--compile]     # adds bertkit with compile=True (torch.compile)

Both encode every sentence of SST-2 dev (872) with all-MiniLM-L6-v2: mean pooling, L2-normalised, max 256
tokens (the model's sentence-transformers settings), fp32 on CPU, same thread count. bertkit batches by a
token budget (its default); sentence-transformers batches by count: its default 32 and larger sizes are all
timed, and the ratio is printed against its default and against its best. Runs alternate so that load on a
shared machine hits every contender alike; the best of --repeats runs counts. Wall time and CPU time (this
process, all threads) are both printed: on a busy machine the CPU time is the steadier of the two.
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


def timed(fn) -> tuple[float, float, np.ndarray]:
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - start, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--max-batch-tokens", type=int, default=8192)
    parser.add_argument(
        "--st-batch-sizes", default="32,128,512", help="sentence-transformers batch sizes to time"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--compile", action="store_true",
                        help="also time bertkit with compile=True (torch.compile; its start-up is printed apart)")  # fmt: skip
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    sentences = read_sentences(args.data)
    folder = model_folder(resolve_model_path(args.model))
    ours = FeatureExtractor.from_pretrained(folder, device="cpu", max_batch_tokens=args.max_batch_tokens)
    theirs = SentenceTransformer(str(folder), device="cpu")
    sizes = [int(x) for x in args.st_batch_sizes.split(",")]
    print(
        f"{len(sentences)} sentences from {args.data}; model {folder}; pooling {ours.pooling.value}, "
        f"normalize {ours.normalize}, max_length {ours.max_length} (sentence-transformers: "
        f"{theirs.max_seq_length}); bertkit max_batch_tokens {args.max_batch_tokens}; {args.threads} threads; "
        f"torch {torch.__version__}"
    )
    contenders = {"bertkit": lambda: ours.encode(sentences)}
    if args.compile:
        start = time.perf_counter()
        compiled = FeatureExtractor.from_pretrained(
            folder, device="cpu", max_batch_tokens=args.max_batch_tokens, compile=True
        )
        print(f"bertkit compile=True: load, compile and warm-up took {time.perf_counter() - start:.1f} s")
        contenders["bertkit (compile)"] = lambda: compiled.encode(sentences)
    for size in sizes:
        contenders[f"sentence-transformers b{size}"] = lambda size=size: theirs.encode(
            sentences, batch_size=size, convert_to_numpy=True
        )
    for fn in contenders.values():  # warm-up
        fn()
    wall: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    outputs = {}
    for _ in range(args.repeats):
        for name, fn in contenders.items():
            seconds, cpu_seconds, outputs[name] = timed(fn)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
    for name in contenders:
        rate = len(sentences) / min(wall[name])
        print(f"{name:28s} {rate:8.1f} sentences/s  wall {min(wall[name]):6.2f}s  cpu {min(cpu[name]):6.2f}s  "
              f"(runs: {', '.join(f'{x:.2f}' for x in wall[name])})")  # fmt: skip
    default = f"sentence-transformers b{sizes[0]}"
    best = min((n for n in contenders if n.startswith("sentence")), key=lambda n: min(wall[n]))
    for ours_name in [n for n in contenders if n.startswith("bertkit")]:
        for label, other in (("its default batch", default), ("its best batch", best)):
            ratio = min(wall[other]) / min(wall[ours_name])
            cpu_ratio = min(cpu[other]) / min(cpu[ours_name])
            print(f"speed-up {ours_name} / sentence-transformers at {label} ({other}): {ratio:.2f}x wall, "
                  f"{cpu_ratio:.2f}x cpu")  # fmt: skip
    for ours_name in [n for n in contenders if n.startswith("bertkit")]:
        a, b = outputs[ours_name], outputs[default]
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        print(f"min cosine, {ours_name} vs sentence-transformers: {cosine.min():.7f}")


if __name__ == "__main__":
    main()
