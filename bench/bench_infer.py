"""Inference speed: bertkit's default eager encoder vs transformers' best eager and ONNX Runtime fp32, same weights.

Usage: python bench/bench_infer.py [--models minilm,base] [--data ../shared/data/glue/SST-2/dev.tsv] [--threads N]
                                   [--compile] [--bf16] [--gemm]

Models: minilm (all-MiniLM-L6-v2) and base (BERT-base-shaped, 12 x 768, random init, saved once and loaded
by both libraries). bertkit is what a user gets by default: load_pretrained + prepare.prepare_for_inference
(packed weights, packed attention), eager, fp32. transformers runs with eager and sdpa attention; its best
is the baseline. ONNX Runtime runs the graph `bertkit export` writes for the same folder, fp32, same threads.
Every side gets identical input tensors (SST-2 dev in file order, padded per batch), under inference_mode.
Each library runs at its default thread wait policy, as a user gets it: libgomp's and ONNX Runtime's idle
threads spin for a while after a call. So the sides take turns in blocks with a pause before each (load on a
shared machine hits each alike, and no side's spinning threads slow the next); figures are medians over
--repeats passes. Printed per model: sentences/s at batch 1 and 32 with the ratios (goals: >= 1.5x at batch
1, >= 2x at batch 32), and the latency of one 16-token sentence at batch 1 vs ORT's (goal: <= 1.3x).
--bf16 adds bertkit with --precision bf16 (bf16 weights packed once, where the CPU has native bf16) as one more
side, with its ratios. --gemm prints the probe behind prepare.FP32_PACKED_ROWS (the rule per ISA): packed / plain
GEMM time per row count, the GELU fused into the packed GEMM or after it, then, weights streaming as in a
forward, MKL's packed sgemm and ONNX Runtime's GEMM beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bertkit.model.bert import BertModel
from bertkit.prepare import prepare_for_inference
from bertkit.runtime import compile_for_inference
from bertkit.weights.load import load_pretrained, model_folder, resolve_model_path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue" / "SST-2" / "dev.tsv"
LATENCY_TEXT = "the film is a charming and often affecting journey through a world of wonder"  # 16 tokens


def read_sentences(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [line.rsplit("\t", 1)[0] for line in lines if line.strip()]


def base_folder(minilm: Path, out: Path) -> Path:
    """A BERT-base-shaped random model (12 layers, 768 hidden) with MiniLM's uncased tokenizer."""
    import shutil

    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                                     num_attention_heads=12, intermediate_size=3072)  # fmt: skip
    transformers.BertModel(config).eval().save_pretrained(out)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (minilm / name).is_file():
            shutil.copy(minilm / name, out / name)
    return out


SETTLE = 0.05  # s of quiet before each block: longer than libgomp's (~8 ms here) and ORT's idle spinning


def in_turns(
    sides: dict[str, Callable], items: list, block: int, rounds: int = 1
) -> dict[str, list[list[float]]]:
    """Each side's seconds per call over all items, one list per round. Each library runs at its own default
    wait policy, as a user gets it (libgomp's and ONNX Runtime's threads spin for a while after a call), so
    the sides take turns in blocks of `block` items (who goes first rotates), each block after SETTLE of
    quiet: no side's spinning threads steal the CPU from the next, and load on a shared machine still hits
    every side alike."""
    names = list(sides)
    out: dict[str, list[list[float]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names:
            out[name].append([])
        for i, first in enumerate(range(0, len(items), block)):
            k = (r + i) % len(names)
            for name in names[k:] + names[:k]:
                time.sleep(SETTLE)
                for item in items[first : first + block]:
                    start = time.perf_counter()
                    sides[name](item)
                    out[name][-1].append(time.perf_counter() - start)
    return out


def interleaved(sides: dict[str, Callable], batches: list, repeats: int) -> dict[str, float]:
    """Median over passes of each side's total time for all batches, the sides taking turns (in_turns) in
    blocks of about a tenth of the batches."""
    block = max(1, len(batches) // 10)
    with torch.inference_mode():
        for batch in batches[:block]:  # warm-up
            for fn in sides.values():
                fn(batch)
        calls = in_turns(sides, batches, block, repeats)
    return {name: statistics.median(sum(one) for one in passes) for name, passes in calls.items()}


def gemm_probe(threads: int) -> None:
    """The probe behind prepare.FP32_PACKED_ROWS, weights hot: packed (oneDNN) / plain (MKL) fp32 GEMM time per
    row count for MiniLM- and BERT-base-sized weights; then, for the FFN's first linear and its exact GELU,
    the GELU as oneDNN's post-op (fused) and after the packed GEMM, each / F.linear + F.gelu. Each ratio is
    the median over 25 alternating calls."""
    import torch.nn.functional as F

    from bertkit.prepare import fp32_packed_rows

    clock = time.thread_time if threads == 1 else time.perf_counter
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"GEMM probe ({'CPU time, 1 thread' if threads == 1 else f'wall time, {threads} threads'}); "
          f"this CPU: {capability}, bertkit's rule {fp32_packed_rows()}")  # fmt: skip
    rows = (1, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

    def ratios(calls: dict[str, Callable], base: str) -> dict[str, float]:
        times: dict[str, list[float]] = {name: [] for name in calls}
        with torch.inference_mode():
            for _ in range(25):
                for name, fn in calls.items():
                    start = clock()
                    fn()
                    times[name].append(clock() - start)
        median = {name: statistics.median(t) for name, t in times.items()}
        return {name: t / median[base] for name, t in median.items() if name != base}

    print("  packed / plain:")
    for k, n in ((384, 1152), (1536, 384), (768, 768), (768, 3072)):
        w, b = torch.randn(n, k) * 0.05, torch.randn(n)
        packed = torch.ops.mkldnn._reorder_linear_weight(w)
        row = []
        for m in rows:
            x = torch.randn(m, k)
            r = ratios({"plain": lambda x=x, w=w, b=b: F.linear(x, w, b),
                        "packed": lambda x=x, p=packed, b=b: torch.ops.mkldnn._linear_pointwise(x, p, b, "none", [], "")},
                       "plain")  # fmt: skip
            row.append(f"{m}:{r['packed']:.2f}")
        print(f"    weight {n}x{k}: rows " + " ".join(row))
    print("  with the exact GELU, fused (post-op) and packed-then-GELU / plain-then-GELU:")
    for k, n in ((384, 1536), (768, 3072)):
        w, b = torch.randn(n, k) * 0.05, torch.randn(n)
        packed = torch.ops.mkldnn._reorder_linear_weight(w)
        row = []
        for m in rows:
            x = torch.randn(m, k)
            r = ratios({
                "plain": lambda x=x, w=w, b=b: F.gelu(F.linear(x, w, b)),
                "fused": lambda x=x, p=packed, b=b: torch.ops.mkldnn._linear_pointwise(x, p, b, "gelu", [], "none"),
                "packed": lambda x=x, p=packed, b=b: F.gelu(torch.ops.mkldnn._linear_pointwise(x, p, b, "none", [], "")),
            }, "plain")  # fmt: skip
            row.append(f"{m}:{r['fused']:.2f}/{r['packed']:.2f}")
        print(f"    weight {n}x{k}: rows " + " ".join(row))


def gemm_stream_probe(threads: int) -> None:
    """A forward's 24 MiniLM linears in turn (42 MB of fp32 weights, more than the caches hold, as a forward
    streams them), time for the whole pass per row count: plain (F.linear, MKL), packed (oneDNN, bertkit's
    default), MKL's packed sgemm (torch.ops.mkl._mkl_linear, packed for exactly these rows: torch falls back
    to the plain GEMM at any other row count) and ONNX Runtime (MatMul + Add nodes, weights as initializers,
    which it packs at load), all in this process, sides alternating (interleaved(): a warm-up, median of 8)."""
    import onnxruntime as ort
    import torch.nn.functional as F
    from onnx import TensorProto, helper, numpy_helper

    shapes = [(1152, 384), (384, 384), (1536, 384), (384, 1536)] * 6
    weights = [(torch.randn(n, k) * 0.05, torch.randn(n)) for n, k in shapes]
    packed = [torch.ops.mkldnn._reorder_linear_weight(w) for w, _ in weights]
    nodes, inits, outputs = [], [], []
    for i, (w, b) in enumerate(weights):
        inits += [numpy_helper.from_array(w.t().contiguous().numpy(), f"w{i}"),
                  numpy_helper.from_array(b.numpy(), f"b{i}")]  # fmt: skip
        nodes += [helper.make_node("MatMul", [f"x{w.shape[1]}", f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"y{i}"])]  # fmt: skip
        outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None))
    inputs = [helper.make_tensor_value_info(f"x{k}", TensorProto.FLOAT, [None, k]) for k in (384, 1536)]
    graph = helper.make_model(helper.make_graph(nodes, "linears", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    print(f"GEMM probe, weights streaming (MiniLM's 24 linears in turn, wall time, {threads} threads), ms:")
    with torch.inference_mode():
        for m in (1, 16, 32, 256, 800):
            xs = {k: torch.randn(m, k) for k in (384, 1536)}
            feed = {f"x{k}": v.numpy() for k, v in xs.items()}
            mkl = [torch.ops.mkl._mkl_reorder_linear_weight(w, m) for w, _ in weights]

            def torch_pass(name: str, xs: dict, mkl=mkl, m=m) -> None:  # noqa: ANN001
                for (w, b), p, q, (_, k) in zip(weights, packed, mkl, shapes, strict=True):
                    if name == "plain":
                        F.linear(xs[k], w, b)
                    elif name == "packed":
                        torch.ops.mkldnn._linear_pointwise(xs[k], p, b, "none", [], "")
                    else:
                        torch.ops.mkl._mkl_linear(xs[k], q, w, b, m)

            sides: dict[str, Callable] = {
                name: (lambda inputs, name=name: torch_pass(name, inputs[0]))
                for name in ("plain", "packed", "mkl-packed")
            }
            sides["onnxruntime"] = lambda inputs: session.run(None, inputs[1])
            ms = {name: 1000 * t for name, t in interleaved(sides, [(xs, feed)], repeats=8).items()}
            print(f"  rows {m:4d}: " + ", ".join(f"{name} {v:7.2f}" for name, v in ms.items())
                  + f"; packed / plain {ms['packed'] / ms['plain']:.2f}")  # fmt: skip


def bench_model(name: str, folder: Path, sentences: list[str], args: argparse.Namespace) -> None:
    import onnxruntime as ort
    import transformers

    from bertkit.export.onnx import export_onnx

    tok = transformers.AutoTokenizer.from_pretrained(folder)
    ours = prepare_for_inference(load_pretrained(folder, BertModel)[0], "fp32")
    theirs = {
        impl: transformers.AutoModel.from_pretrained(folder, attn_implementation=impl).eval()
        for impl in ("eager", "sdpa")
    }
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(folder, tmp)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads  # and ORT's defaults otherwise: its threads spin
        session = ort.InferenceSession(f"{tmp}/model.onnx", options, providers=["CPUExecutionProvider"])
    sides: dict[str, Callable] = {
        "bertkit": lambda b: ours(b["input_ids"], b["token_type_ids"], b["attention_mask"]),
        **{f"transformers ({impl})": (lambda b, m=m: m(**b)) for impl, m in theirs.items()},
        "onnxruntime": lambda b: session.run(["last_hidden_state"], {k: v.numpy() for k, v in b.items()}),
    }
    if args.bf16:
        from bertkit.runtime import native_bf16

        if not native_bf16():
            raise SystemExit("--bf16: this CPU has no native bf16 (AVX-512-BF16 or AMX); nothing to measure")
        ours_bf16 = prepare_for_inference(load_pretrained(folder, BertModel)[0], "bf16")
        sides["bertkit (bf16)"] = lambda b: ours_bf16(
            b["input_ids"], b["token_type_ids"], b["attention_mask"]
        )
    if args.compile:
        start = time.perf_counter()
        compiled = compile_for_inference(load_pretrained(folder, BertModel)[0])
        with torch.inference_mode():
            for texts in (sentences[:1], sentences[:2], sentences[:32]):
                b = dict(tok(texts, padding=True, return_tensors="pt"))
                compiled(b["input_ids"], b["token_type_ids"], b["attention_mask"])
        print(f"torch.compile warm-up: {time.perf_counter() - start:.0f} s")
        sides["bertkit (compile)"] = lambda b: compiled(
            b["input_ids"], b["token_type_ids"], b["attention_mask"]
        )
    print(
        f"\n== {name} ({folder}): {ours.config.num_hidden_layers} layers x {ours.config.hidden_size} hidden"
    )
    for batch_size, count in ((1, args.batch_one_sentences), (32, args.batch_32_sentences)):
        subset = sentences[:count]
        batches = [
            dict(tok(subset[i : i + batch_size], padding=True, return_tensors="pt"))
            for i in range(0, len(subset), batch_size)
        ]
        times = interleaved(sides, batches, args.repeats)
        hf = {k: v for k, v in times.items() if k.startswith("transformers")}
        best = min(hf, key=hf.get)
        tokens = statistics.mean(
            int(b["attention_mask"].sum()) / b["attention_mask"].shape[0] for b in batches
        )
        print(
            f"batch {batch_size:>2}: {len(subset)} sentences, {tokens:.1f} real tokens/sentence (medians of {args.repeats})"
        )
        for side, t in times.items():
            print(f"  {side:<24} {len(subset) / t:8.1f} sentences/s")
        goal = 1.5 if batch_size == 1 else 2.0
        print(f"  ratio bertkit / {best}: {hf[best] / times['bertkit']:.2f}x (goal >= {goal}x)")
        print(f"  ratio bertkit / onnxruntime: {times['onnxruntime'] / times['bertkit']:.2f}x")
        for extra in ("bertkit (bf16)", "bertkit (compile)"):
            if extra in times:
                print(f"  ratio {extra} / {best}: {hf[best] / times[extra]:.2f}x, "
                      f"/ onnxruntime: {times['onnxruntime'] / times[extra]:.2f}x")  # fmt: skip
    one = dict(tok([LATENCY_TEXT], return_tensors="pt"))
    assert one["input_ids"].shape[1] == 16, one["input_ids"].shape
    with torch.inference_mode():
        for fn in sides.values():
            fn(one)
        lat = in_turns(sides, [one] * args.latency_requests, block=10)  # sequential calls
    p50 = {side: 1000 * statistics.median(rounds[0]) for side, rounds in lat.items()}
    print(f"16-token sentence, batch 1, p50 of {args.latency_requests} sequential calls in blocks of 10: "
          + ", ".join(f"{side} {v:.2f} ms" for side, v in p50.items()))  # fmt: skip
    print(f"  bertkit / onnxruntime latency: {p50['bertkit'] / p50['onnxruntime']:.2f}x (goal <= 1.3x)")
    if "bertkit (bf16)" in p50:
        print(f"  bertkit (bf16) / onnxruntime latency: {p50['bertkit (bf16)'] / p50['onnxruntime']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", default="minilm,base", help="comma-separated: minilm, base, or model folders"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-one-sentences", type=int, default=200)
    parser.add_argument("--batch-32-sentences", type=int, default=320)
    parser.add_argument("--latency-requests", type=int, default=100)
    parser.add_argument("--compile", action="store_true", help="add bertkit through torch.compile (~1 min)")
    parser.add_argument("--bf16", action="store_true",
                        help="add bertkit --precision bf16 (bf16 weights packed once; CPUs with native bf16)")
    parser.add_argument("--gemm", action="store_true",
                        help="only the packed-GEMM probes (weights hot, then streaming)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.gemm:
        gemm_probe(args.threads)
        gemm_stream_probe(args.threads)
        return
    import transformers

    sentences = read_sentences(args.data)
    print(f"{len(sentences)} SST-2 dev sentences; threads {args.threads}; torch {torch.__version__}; "
          f"transformers {transformers.__version__}; "
          f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
          f"ONNX Runtime's default spinning; medians of interleaved runs")  # fmt: skip
    minilm = model_folder(resolve_model_path("minilm"))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name == "minilm":
                folder = minilm
            elif name == "base":
                folder = base_folder(minilm, Path(tmp) / "bert-base-random")
            else:
                folder = model_folder(resolve_model_path(name))
            bench_model(name, folder, sentences, args)


if __name__ == "__main__":
    main()
