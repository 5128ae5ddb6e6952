"""Encode throughput: bertkit's FeatureExtractor.encode vs sentence-transformers' encode, same model and sentences.

Usage: python bench/bench_encode.py [--model minilm] [--data ../shared/data/glue/SST-2/dev.tsv]
                                    [--max-batch-tokens 8192] [--st-batch-sizes 32,128,512] [--repeats 3]
                                    [--compile]     # adds bertkit with compile=True (torch.compile)
                                    [--same-malloc] # the references keep freed blocks too

Both encode every sentence of SST-2 dev (872) with all-MiniLM-L6-v2: mean pooling, L2-normalised, max 256
tokens (the model's sentence-transformers settings), fp32 on CPU, same thread count. bertkit batches by a
token budget (its default); sentence-transformers batches by count: its default 32 and larger sizes are all
timed, and the ratio is printed against its default and against its best. Runs alternate so that load on a
shared machine hits every contender alike; the best of --repeats runs counts. Wall time and CPU time (this
process, all threads) are both printed: on a busy machine the CPU time is the steadier of the two.

Memory: bertkit keeps freed blocks for reuse (bertkit.runtime.keep_freed_memory: glibc's mmap and trim
thresholds at 1 GiB), so its large activations do not come back from the kernel as new pages on every batch.
The references run as their users get them, at glibc's defaults: before each of their runs the thresholds are
set to 32 MiB / 64 MiB, where glibc's own adaptive thresholds stop (they never go higher, so the references
fault no more than they would alone). "bertkit (glibc default)" is bertkit under the same setting, and every
row prints its minor page faults per run. --same-malloc runs everything with freed blocks kept.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch

from bertkit import runtime
from bertkit.inference.features import FeatureExtractor
from bertkit.weights.load import model_folder, resolve_model_path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue" / "SST-2" / "dev.tsv"


def read_sentences(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [line.rsplit("\t", 1)[0] for line in lines if line.strip()]


GLIBC_DEFAULT = (32 << 20, 64 << 20)  # the most glibc's adaptive mmap / trim thresholds reach
KEPT = (runtime.KEEP_FREED_BYTES, runtime.KEEP_FREED_BYTES)


def timed(fn, malloc: tuple[int, int] | None) -> tuple[float, float, int, np.ndarray]:
    if malloc and not runtime.set_malloc_thresholds(*malloc):
        raise RuntimeError(f"glibc refused the malloc thresholds {malloc}")
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults, out


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
    parser.add_argument("--same-malloc", action="store_true",
                        help="run the references with freed blocks kept too, as bertkit (see the docstring)")  # fmt: skip
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    sentences = read_sentences(args.data)
    folder = model_folder(resolve_model_path(args.model))
    ours = FeatureExtractor.from_pretrained(folder, device="cpu", max_batch_tokens=args.max_batch_tokens)
    kept = runtime.keep_freed_memory()
    theirs = SentenceTransformer(str(folder), device="cpu")
    sizes = [int(x) for x in args.st_batch_sizes.split(",")]
    print(
        f"{len(sentences)} sentences from {args.data}; model {folder}; pooling {ours.pooling.value}, "
        f"normalize {ours.normalize}, max_length {ours.max_length} (sentence-transformers: "
        f"{theirs.max_seq_length}); bertkit max_batch_tokens {args.max_batch_tokens}; {args.threads} threads; "
        f"torch {torch.__version__}"
    )
    print(
        f"malloc: bertkit keeps freed blocks: {kept}; the references run at "
        + ("the same setting (--same-malloc)" if args.same_malloc or not kept else "glibc's defaults (32 / 64 MiB)")
    )
    contenders = {"bertkit": lambda: ours.encode(sentences)}
    mallocs: dict[str, tuple[int, int] | None] = {"bertkit": KEPT if kept else None}
    if kept:
        contenders["bertkit (glibc default)"] = lambda: ours.encode(sentences)
        mallocs["bertkit (glibc default)"] = GLIBC_DEFAULT
    if args.compile:
        start = time.perf_counter()
        compiled = FeatureExtractor.from_pretrained(
            folder, device="cpu", max_batch_tokens=args.max_batch_tokens, compile=True
        )
        print(f"bertkit compile=True: load, compile and warm-up took {time.perf_counter() - start:.1f} s")
        contenders["bertkit (compile)"] = lambda: compiled.encode(sentences)
        mallocs["bertkit (compile)"] = mallocs["bertkit"]
    for size in sizes:
        contenders[f"sentence-transformers b{size}"] = lambda size=size: theirs.encode(
            sentences, batch_size=size, convert_to_numpy=True
        )
        mallocs[f"sentence-transformers b{size}"] = mallocs["bertkit"] if args.same_malloc else GLIBC_DEFAULT
    if not kept:
        mallocs = dict.fromkeys(contenders)
    for name, fn in contenders.items():  # warm-up
        timed(fn, mallocs[name])
    wall: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    faults: dict[str, list[int]] = {name: [] for name in contenders}
    outputs = {}
    for _ in range(args.repeats):
        for name, fn in contenders.items():
            seconds, cpu_seconds, page_faults, outputs[name] = timed(fn, mallocs[name])
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
            faults[name].append(page_faults)
    for name in contenders:
        rate = len(sentences) / min(wall[name])
        print(f"{name:32s} {rate:8.1f} sentences/s  wall {min(wall[name]):6.2f}s  cpu {min(cpu[name]):6.2f}s  "
              f"page faults {int(np.median(faults[name])):7d}  (runs: {', '.join(f'{x:.2f}' for x in wall[name])})")  # fmt: skip
    default = f"sentence-transformers b{sizes[0]}"
    best = min((n for n in contenders if n.startswith("sentence")), key=lambda n: min(wall[n]))
    if kept:
        by_best = min(wall["bertkit (glibc default)"]) / min(wall["bertkit"])
        paired = np.median(np.array(wall["bertkit (glibc default)"]) / np.array(wall["bertkit"]))
        print(f"bertkit with freed blocks kept / at glibc's defaults: {by_best:.2f}x (best runs), "
              f"{paired:.2f}x (median of the rounds' ratios)")  # fmt: skip
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
