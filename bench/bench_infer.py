"""Inference speed: bertkit's encoder vs transformers' BertModel, same model, same sentences, same threads.

Usage: python bench/bench_infer.py [--model minilm] [--data ../shared/data/glue/SST-2/dev.tsv] [--threads N]

bertkit runs eager, and once more through runtime.compile_for_inference (torch.compile, opt-in for users).
Both models get identical input tensors (the same padded batches, in file order), fp32, eval, inference_mode.
transformers is timed with eager and sdpa attention and its best is the baseline. Prints sentences/s and
the ratio for batch 1 and batch 32.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from bertkit.model.bert import BertModel
from bertkit.runtime import compile_for_inference
from bertkit.weights.load import load_pretrained, resolve_model_path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue" / "SST-2" / "dev.tsv"


def read_sentences(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [line.rsplit("\t", 1)[0] for line in lines if line.strip()]


def time_model(fn, batches, repeats: int) -> float:
    """Best-of-repeats wall time (s) for one pass over all batches."""
    with torch.inference_mode():
        for batch in batches[: max(1, len(batches) // 10)]:  # warm-up
            fn(batch)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for batch in batches:
                fn(batch)
            times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-one-sentences", type=int, default=300)
    parser.add_argument(
        "--no-compile", action="store_true", help="skip the torch.compile row (it compiles ~1 min)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import transformers

    path = resolve_model_path(args.model)
    sentences = read_sentences(args.data)
    tok = transformers.AutoTokenizer.from_pretrained(path)
    ours, _ = load_pretrained(path, BertModel)
    theirs = {
        impl: transformers.AutoModel.from_pretrained(path, attn_implementation=impl).eval()
        for impl in ("eager", "sdpa")
    }
    compiled = None
    if not args.no_compile:
        start = time.perf_counter()
        compiled = compile_for_inference(load_pretrained(path, BertModel)[0])
        with torch.inference_mode():  # compile once for dynamic shapes, padded and unpadded
            for texts in (sentences[:1], sentences[:2], sentences[:32]):
                b = dict(tok(texts, padding=True, return_tensors="pt"))
                compiled(b["input_ids"], b["token_type_ids"], b["attention_mask"])
        print(f"torch.compile warm-up: {time.perf_counter() - start:.0f} s")
    print(
        f"model {path.name if path.name != 'model' else path.parent.name}; {len(sentences)} SST-2 dev sentences; "
        f"threads {args.threads}; torch {torch.__version__}; transformers {transformers.__version__}"
    )

    for batch_size in (1, 32):
        subset = sentences[: args.batch_one_sentences] if batch_size == 1 else sentences
        batches = [
            dict(tok(subset[i : i + batch_size], padding=True, return_tensors="pt"))
            for i in range(0, len(subset), batch_size)
        ]
        t_ours = time_model(
            lambda b: ours(b["input_ids"], b["token_type_ids"], b["attention_mask"]), batches, args.repeats
        )
        t_compiled = None
        if compiled is not None:
            t_compiled = time_model(
                lambda b: compiled(b["input_ids"], b["token_type_ids"], b["attention_mask"]),
                batches,
                args.repeats,
            )
        t_theirs = {
            impl: time_model(lambda b, m=m: m(**b), batches, args.repeats) for impl, m in theirs.items()
        }
        best_impl = min(t_theirs, key=t_theirs.get)
        n = len(subset)
        tokens = statistics.mean(
            int(b["attention_mask"].sum()) / b["attention_mask"].shape[0] for b in batches
        )
        print(f"batch {batch_size:>2}: {n} sentences, {tokens:.1f} real tokens/sentence")
        print(f"  bertkit                      {n / t_ours:8.1f} sentences/s")
        if t_compiled is not None:
            print(f"  bertkit (compile)            {n / t_compiled:8.1f} sentences/s")
        for impl, t in t_theirs.items():
            print(f"  transformers ({impl:<5})         {n / t:8.1f} sentences/s")
        print(f"  ratio bertkit / transformers best ({best_impl}): {t_theirs[best_impl] / t_ours:.2f}x")
        if t_compiled is not None:
            print(
                f"  ratio bertkit (compile) / transformers best ({best_impl}): "
                f"{t_theirs[best_impl] / t_compiled:.2f}x"
            )


if __name__ == "__main__":
    main()
