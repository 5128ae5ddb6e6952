"""Training steps with glibc's malloc keeping freed memory (bertkit's default, runtime.keep_freed_memory) and at
glibc's defaults (BERTKIT_KEEP_FREED_MEMORY=0): step time, minor page faults per step and peak RSS.

    python bench/bench_train_malloc.py [--shapes minilm,base] [--batch 32] [--length 128] [--steps 5] [--rounds 2]

Each measurement is a fresh process (mallopt is decided once per process): a random-init BertForSequence-
Classification of the shape (MiniLM: 6 x 384; base: 12 x 768), fused AdamW, one batch whose second half is
padded to half length, one warm-up step, then --steps timed steps. The two sides alternate, --rounds times;
medians are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SHAPES = {"minilm": (384, 6, 1536), "base": (768, 12, 3072)}


def child(shape: str, batch: int, length: int, steps: int) -> dict:
    import torch

    from bertkit import runtime
    from bertkit.model.config import BertConfig
    from bertkit.model.heads import BertForSequenceClassification

    kept = runtime.keep_freed_memory()
    hidden, layers, inner = SHAPES[shape]
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=12,
                        intermediate_size=inner, labels=("a", "b"))  # fmt: skip
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    ids = torch.randint(1000, 30000, (batch, length))
    mask = torch.ones_like(ids)
    mask[batch // 2 :, length // 2 :] = 0
    labels = torch.randint(0, 2, (batch,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(ids, torch.zeros_like(ids), mask), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps
    return {"kept": kept, "step_ms": seconds * 1e3, "faults": faults,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default="minilm,base")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.batch, args.length, args.steps)))
        return
    print(f"batch {args.batch} x {args.length} (half of it padded to {args.length // 2}), {args.steps} steps per "
          f"process, {args.rounds} rounds, sides alternating; torch threads: torch's default")  # fmt: skip
    print(f"{'shape':<7} {'side':<22} {'ms/step':>8} {'faults/step':>12} {'peak RSS MB':>12}")
    for shape in args.shapes.split(","):
        runs: dict[str, list[dict]] = {"kept (default)": [], "glibc defaults": []}
        for _ in range(args.rounds):
            for side, env in (("kept (default)", "1"), ("glibc defaults", "0")):
                cmd = [sys.executable, __file__, "--child", shape, "--batch", str(args.batch), "--length",
                       str(args.length), "--steps", str(args.steps)]  # fmt: skip
                out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                     env={**os.environ, "BERTKIT_KEEP_FREED_MEMORY": env})  # fmt: skip
                runs[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
        for side, rows in runs.items():
            med = {k: statistics.median(r[k] for r in rows) for k in ("step_ms", "faults", "peak_mb")}
            print(f"{shape:<7} {side:<22} {med['step_ms']:>8.0f} {med['faults']:>12,.0f} {med['peak_mb']:>12,.0f}")
        kept, plain = (statistics.median(r["step_ms"] for r in runs[s]) for s in runs)
        print(f"{shape:<7} ratio glibc defaults / kept step time {plain / kept:.2f}x", flush=True)


if __name__ == "__main__":
    main()
