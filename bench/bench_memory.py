"""Memory and tokenization time of features: the list-of-dicts featurize vs the compact store (first run: tokenize
into the cache; cached run: open it), for 100k / 1M / 2M synthetic classification examples, and for a SQuAD file.

Usage: python bench/bench_memory.py [--sizes 100000,1000000,2000000] [--lists-up-to 100000]
                                    [--max-seq-length 128] [--vocab FILE] [--work-dir DIR] [--train-size 2000000]
                                    [--eval-size 1000000] [--infer-size 1000000]
                                    [--squad FILE [--squad-length 384] [--squad-repeat 8]]

Every measurement runs in a fresh process (its own peak RSS, ru_maxrss), reading the same TSV through the same
validation (bertkit.training.experiment.load_data), then:
  - lists:  bertkit.engine.featurize -> list of dicts of Python lists (today's path);
  - store:  bertkit.feature_cache.cached_featurize into an empty cache folder (tokenizes);
  - cached: the same call again (the store exists: no tokenization).
Sides alternate per size (lists, store, cached), so machine load hits all alike. With --train-size, one more
process runs `bertkit train`'s library path (experiment.run) on that many examples with a tiny random model for a
few steps, featurizing through the store, and reports its peak RSS (the issue's bar: under 3 GB at 2M). With
--eval-size, three more evaluate that many examples (training.loop.evaluate, tiny model): as the dev pass of
`bertkit train` runs it (scored from arrays, no prediction dict per example) with features as lists and
streamed from the store, and from the store keeping one prediction dict per example (as the final evaluation
of `bertkit train` does, for its confusion matrix).
With --infer-size, four more run `bertkit predict`'s and `bertkit encode`'s library paths over that many JSON lines
with the tiny model (for predict, a random 2-label head): every line read at once (as both did until they
streamed) and streamed (inference.predict_file, a chunk of lines at a time; encode_inputs.open_inputs, the file
read as its rows are encoded); the outputs must agree line by line.
Text: words drawn from the vocab's whole words (5-40 per text), label from the first word's parity.
With --squad FILE (SQuAD v1.1 dev: 10,570 questions; --squad-repeat 8 writes its articles 8 times, with new
question ids, for a SQuAD-train-sized 84,560), the same three sides featurize it as `bertkit train --task squad`
does (windows with their character offsets), then `bertkit train`'s library path runs 20 steps of a tiny model
with the features as lists and from the store.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DEFAULT_VOCAB = Path(__file__).resolve().parents[2] / "shared" / "models" / "vocab" / "bert-base-uncased-vocab.txt"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def synthetic(count: int, vocab: Path, seed: int = 0) -> Iterator[tuple[str, str]]:
    """(text, label) pairs: 5-40 whole words of the vocab, the label from the first word's parity."""
    import numpy as np

    words = [w for w in vocab.read_text(encoding="utf-8").split("\n") if w.isalpha() and w.islower()]
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 41, count)
    ids = rng.integers(0, len(words), int(lengths.sum()))
    start = 0
    for n in lengths.tolist():
        row = ids[start : start + n]
        start += n
        yield " ".join(words[i] for i in row), ("pos" if row[0] % 2 else "neg")


def make_data(path: Path, count: int, vocab: Path, seed: int = 0) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        f.writelines(f"{text}\t{label}\n" for text, label in synthetic(count, vocab, seed))


def child(mode: str, data: Path, cache: Path, vocab: Path, max_len: int, model: Path | None) -> dict:
    from bertkit.tokenization import Tokenizer
    from bertkit.training.experiment import DataSpec, load_data

    if data.suffix == ".json":  # SQuAD
        spec = DataSpec(task="squad", train_file=str(data))
    else:
        spec = DataSpec(task="classification", train_file=str(data), fields={"text": "sentence", "label": "label"})
    if mode in ("train", "train-lists"):
        return _train(spec, cache if mode == "train" else None, model, max_len)
    if mode.startswith(("predict-", "encode-")):
        assert model is not None
        job, side = mode.split("-")
        return (_predict if job == "predict" else _encode)(data, model, side, cache)
    if mode.startswith("eval-"):
        return _evaluate(spec, cache, model, max_len, mode.removeprefix("eval-"))
    start = time.perf_counter()
    loaded = load_data(spec)
    read_s = time.perf_counter() - start
    tokenizer = Tokenizer.from_vocab(vocab, do_lower_case=True)
    tokenizer.encode_batch(["a b"], None, max_len)  # the tokenizer's own memory is baseline
    after_read = peak_mb()
    start = time.perf_counter()
    if mode == "lists":
        from bertkit.engine import featurize

        features = featurize(loaded.task, loaded.train, tokenizer, max_len)
        tokens = sum(len(f["input_ids"]) for f in features)
    else:
        from bertkit.feature_cache import cached_featurize

        features = cached_featurize(loaded.task, loaded.train, tokenizer, max_len, cache)
        assert features is not None
        tokens = int(features.lengths().sum())
    featurize_s = time.perf_counter() - start
    return {"examples": len(loaded.train), "tokens": tokens, "read_s": read_s, "featurize_s": featurize_s,
            "rss_after_read_mb": after_read, "peak_rss_mb": peak_mb()}  # fmt: skip


def _train(spec, cache: Path | None, model: Path | None, max_len: int) -> dict:  # noqa: ANN001
    """experiment.run as `bertkit train` calls it: read, validate, featurize (through the store, or as lists
    when cache is None), 20 steps."""
    from bertkit.training.config import TrainConfig
    from bertkit.training.experiment import run

    assert model is not None
    config = TrainConfig(max_seq_length=max_len, batch_size=32, max_steps=20, progress=False,
                         feature_cache=str(cache) if cache else "off")  # fmt: skip
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        run(spec, str(model), config, out, do_eval=False)
    return {"run_s": time.perf_counter() - start, "peak_rss_mb": peak_mb()}


def _evaluate(spec, cache: Path, model: Path | None, max_len: int, side: str) -> dict:  # noqa: ANN001
    """training.loop.evaluate (the dev pass of `bertkit train`) over every example with a tiny model: features
    as lists (side "lists") or from the store the rows above built ("store"); peak RSS over the baseline of
    the examples read, the model loaded and (store) the store opened."""
    from bertkit.engine import featurize
    from bertkit.feature_cache import cached_featurize
    from bertkit.tokenization import Tokenizer
    from bertkit.training.config import TrainConfig
    from bertkit.training.experiment import load_data
    from bertkit.training.loop import evaluate

    assert model is not None
    loaded = load_data(spec)
    tokenizer = Tokenizer.from_pretrained(model)
    net, _ = loaded.task.build_model(str(model))
    config = TrainConfig(max_seq_length=max_len, eval_batch_size=256, progress=False)
    start = time.perf_counter()
    if side == "lists":
        features = featurize(loaded.task, loaded.train, tokenizer, max_len)
    else:
        features = cached_featurize(loaded.task, loaded.train, tokenizer, max_len, cache)
        assert features is not None
    before = peak_mb()
    keep = side == "store-dicts"  # else as the dev pass: scored from arrays, no prediction dict per example
    metrics, _ = evaluate(
        loaded.task, net, tokenizer, loaded.train, config, features=features, keep_predictions=keep
    )
    return {"eval_s": time.perf_counter() - start, "rss_before_eval_mb": before, "peak_rss_mb": peak_mb(),
            "accuracy": metrics["accuracy"]}  # fmt: skip


def _predict(data: Path, model: Path, side: str, output: Path) -> dict:
    """`bertkit predict`'s library path over every line of `data` into `output`: "whole" reads every line,
    predicts them in one call and writes them (as bertkit predict did until it streamed), "streamed" is
    inference.predict_file (a chunk of lines at a time)."""
    from bertkit.inference.predictor import Predictor, read_inputs

    predictor = Predictor.from_pretrained(model, batch_size=64, device="cpu")
    baseline = peak_mb()
    start = time.perf_counter()
    if side == "whole":
        examples = [predictor.examples([obj], source)[0] for source, obj in read_inputs(str(data))]
        with output.open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in predictor.predict_examples(examples))
    else:
        from bertkit.inference.predict_file import predict_file

        predict_file(predictor, str(data), str(output))
    return {"predict_s": time.perf_counter() - start, "rss_before_mb": baseline, "peak_rss_mb": peak_mb()}


def _encode(data: Path, model: Path, side: str, output: Path) -> dict:
    """`bertkit encode`'s library path over every line of `data` into `output` (.npy and its ids file): "whole"
    reads every row into lists first (as bertkit encode did until it streamed), "streamed" reads the file as the
    rows are encoded (encode_inputs.open_inputs)."""
    from bertkit.inference.encode_file import encode_file
    from bertkit.inference.encode_inputs import open_inputs, read_inputs
    from bertkit.inference.features import FeatureExtractor

    extractor = FeatureExtractor.from_pretrained(model, pooling="mean", device="cpu")
    baseline = peak_mb()
    start = time.perf_counter()
    encode_file(extractor, (read_inputs if side == "whole" else open_inputs)(data), output)
    return {"encode_s": time.perf_counter() - start, "rss_before_mb": baseline, "peak_rss_mb": peak_mb()}


def classifier(work: Path, vocab: Path, max_len: int) -> Path:
    """The tiny model with a random 2-label head, saved as `bertkit train` saves a fine-tuned folder."""
    from bertkit.tasks.classification import ClassificationTask
    from bertkit.tokenization import Tokenizer
    from bertkit.training.checkpoint import save_model_folder
    from bertkit.training.config import TrainConfig

    base = tiny_model(work / "tiny-model", vocab)
    task = ClassificationTask(labels=["neg", "pos"])
    model, _ = task.build_model(str(base))
    folder = work / "tiny-classifier"
    save_model_folder(folder, model, Tokenizer.from_pretrained(base), task, TrainConfig(max_seq_length=max_len))
    return folder


def inference_rows(work: Path, args: argparse.Namespace) -> None:
    """`bertkit predict` and `bertkit encode` over --infer-size JSON lines, whole vs streamed: peak RSS, time, and
    the outputs compared."""
    import numpy as np

    size = args.infer_size
    data = work / f"infer-{size}.jsonl"
    if not data.is_file():
        with data.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": text}) + "\n" for text, _ in synthetic(size, args.vocab, seed=1))
    model = classifier(work, args.vocab, args.max_seq_length)
    for job, suffix in (("predict", ".jsonl"), ("encode", ".npy")):
        rows, outputs = {}, {}
        for side in ("whole", "streamed"):
            outputs[side] = work / f"{job}-{side}{suffix}"
            r = rows[side] = spawn(f"{job}-{side}", data, outputs[side], args, model)
            print(f"{job} {size:,} lines ({side}, tiny model): peak RSS {r['peak_rss_mb']:,.0f} MB, "
                  f"{r['peak_rss_mb'] - r['rss_before_mb']:,.0f} MB over the loaded model; {r[f'{job}_s']:.0f} s, "
                  f"{size / r[f'{job}_s']:,.0f} lines/s", flush=True)  # fmt: skip
        whole, streamed = rows["whole"], rows["streamed"]
        if job == "predict":
            same = _same_predictions(outputs["whole"], outputs["streamed"])
        else:
            a, b = np.load(outputs["whole"], mmap_mode="r"), np.load(outputs["streamed"], mmap_mode="r")
            assert a.shape == b.shape, (a.shape, b.shape)
            ids = [outputs[side].with_name(outputs[side].stem + ".ids.txt").read_bytes() for side in rows]
            assert ids[0] == ids[1], "the ids files differ"
            same = f"{len(a):,} vectors within {float(np.abs(a - b).max()):.1e}, ids equal"
        print(f"ratio whole/streamed: peak RSS {whole['peak_rss_mb'] / streamed['peak_rss_mb']:.2f}x, time "
              f"{whole[f'{job}_s'] / streamed[f'{job}_s']:.2f}x; {same}", flush=True)  # fmt: skip


def _same_predictions(a_path: Path, b_path: Path) -> str:
    gap = 0.0
    with a_path.open() as a, b_path.open() as b:
        for count, (x, y) in enumerate(zip(a, b, strict=True), start=1):
            px, py = json.loads(x), json.loads(y)
            assert px["label"] == py["label"], f"line {count}: {px} vs {py}"
            gap = max(gap, *(abs(px["probabilities"][k] - py["probabilities"][k]) for k in px["probabilities"]))
    return f"{count:,} labels equal, probabilities within {gap:.1e}"


def spawn(mode: str, data: Path, cache: Path, args: argparse.Namespace, model: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--data", str(data), "--cache", str(cache),
           "--vocab", str(args.vocab), "--max-seq-length", str(args.max_seq_length)]  # fmt: skip
    if model is not None:
        cmd += ["--model", str(model)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{mode} on {data} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def tiny_model(folder: Path, vocab: Path, positions: int = 128) -> Path:
    import torch

    from bertkit.model.config import BertConfig
    from bertkit.model.heads import BertForPreTraining
    from bertkit.tokenization import Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(vocab, folder / "vocab.txt")
    torch.manual_seed(0)
    size = len(vocab.read_text(encoding="utf-8").splitlines())
    config = BertConfig(vocab_size=size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=positions)  # fmt: skip
    BertForPreTraining(config).save_pretrained(folder)
    Tokenizer.from_vocab(folder / "vocab.txt", do_lower_case=True).save_pretrained(folder)
    return folder


def sized_run(work: Path, size: int, args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """(the synthetic TSV of `size` examples, written once; its cache folder; the tiny model) for a train or
    evaluate measurement."""
    data = work / f"train-{size}.tsv"
    if not data.is_file():
        make_data(data, size, args.vocab)
    return data, work / f"cache-{size}", tiny_model(work / "tiny-model", args.vocab)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000,2000000")
    p.add_argument("--lists-up-to", type=int, default=100_000, help="today's path only up to this size (RAM)")
    p.add_argument("--train-size", type=int, default=0, help="also train on this many examples (peak RSS)")
    p.add_argument("--train-runs", default="cached", help="first (empty cache: tokenizes), cached, or both "
                   "comma-separated; cached reuses the store the size's rows above built")  # fmt: skip
    p.add_argument("--eval-size", type=int, default=0, help="also evaluate this many examples: features as "
                   "lists vs streamed from the store (peak RSS)")  # fmt: skip
    p.add_argument("--infer-size", type=int, default=0, help="also run bertkit predict and bertkit encode over "
                   "this many JSON lines: every line read at once vs streamed (peak RSS)")  # fmt: skip
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--squad", type=Path, help="also measure this SQuAD-format JSON (e.g. ../shared/data/squad/"
                   "dev-v1.1.json): features and a 20-step training run, lists vs store")  # fmt: skip
    p.add_argument("--squad-length", type=int, default=384, help="max_seq_length of the SQuAD rows")
    p.add_argument("--squad-repeat", type=int, default=1, help="the SQuAD file's articles this many times")
    p.add_argument("--vocab", type=Path, default=DEFAULT_VOCAB)
    p.add_argument("--work-dir", type=Path, help="keep data and caches here (default: a temporary folder)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.data, args.cache, args.vocab, args.max_seq_length, args.model)))
        return
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"shared machine; data and caches in {work}; max_seq_length {args.max_seq_length}; vocab {args.vocab}")
    header = f"{'examples':>9} {'side':<7} {'tokens':>11} {'read s':>7} {'tokenize s':>10} {'peak RSS MB':>11}" \
             f" {'features MB':>11} {'B/token':>8}"  # fmt: skip
    if args.sizes:
        print(header)
    for size in [int(s) for s in args.sizes.split(",") if s]:  # --sizes "": the SQuAD rows alone
        data = work / f"train-{size}.tsv"
        if not data.is_file():
            make_data(data, size, args.vocab)
        cache = work / f"cache-{size}"
        shutil.rmtree(cache, ignore_errors=True)
        rows = {}
        for side in (["lists"] if size <= args.lists_up_to else []) + ["store", "cached"]:
            rows[side] = spawn(side, data, cache, args)
            feature_row(side, rows[side])
        if "lists" in rows:
            lists, store = rows["lists"], rows["store"]
            print(f"{'':>9} ratio   lists/store peak RSS {lists['peak_rss_mb'] / store['peak_rss_mb']:.2f}x, "
                  f"feature memory {(lists['peak_rss_mb'] - lists['rss_after_read_mb']) / max(1.0, store['peak_rss_mb'] - store['rss_after_read_mb']):.1f}x")  # fmt: skip
        first, again = rows["store"], rows["cached"]
        print(f"{'':>9} ratio   first/cached tokenize time {first['featurize_s'] / again['featurize_s']:.1f}x "
              f"(cached: {again['featurize_s']:.2f} s, no tokenization)", flush=True)  # fmt: skip
    if args.train_size:
        data, cache, model = sized_run(work, args.train_size, args)
        for label in args.train_runs.split(","):
            if label == "first":
                shutil.rmtree(cache, ignore_errors=True)
            r = spawn("train", data, cache, args, model)
            print(f"train {args.train_size:,} examples ({label} store, 20 steps, tiny model): peak RSS "
                  f"{r['peak_rss_mb']:,.0f} MB ({'under' if r['peak_rss_mb'] < 3072 else 'OVER'} 3 GB), "
                  f"{r['run_s']:.0f} s in all (read, validate, featurize, train)", flush=True)  # fmt: skip
    if args.eval_size:
        data, cache, model = sized_run(work, args.eval_size, args)
        if not cache.is_dir():
            spawn("store", data, cache, args)
        for side, features in (("lists", "as lists"), ("store", "from the store"),
                               ("store-dicts", "from the store, a prediction dict kept per example")):
            r = spawn(f"eval-{side}", data, cache, args, model)
            over = r["peak_rss_mb"] - r["rss_before_eval_mb"]
            print(f"evaluate {args.eval_size:,} examples (features {features}, tiny model): peak RSS "
                  f"{r['peak_rss_mb']:,.0f} MB, {over:,.0f} MB over the examples, model and features; "
                  f"{r['eval_s']:.0f} s; accuracy {r['accuracy']:.4f} (an untrained head: ~0.5, a sanity figure)",
                  flush=True)  # fmt: skip
    if args.infer_size:
        inference_rows(work, args)
    if args.squad:
        squad_rows(work, args, header)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


def feature_row(side: str, r: dict) -> None:
    """One row of a features table: a child's examples, tokens, times, peak RSS and what featurizing added."""
    grown = r["peak_rss_mb"] - r["rss_after_read_mb"]
    print(f"{r['examples']:>9,} {side:<7} {r['tokens']:>11,} {r['read_s']:>7.1f} {r['featurize_s']:>10.2f} "
          f"{r['peak_rss_mb']:>11,.0f} {grown:>11,.0f} {grown * 2**20 / r['tokens']:>8.1f}", flush=True)  # fmt: skip


def squad_rows(work: Path, args: argparse.Namespace, header: str) -> None:
    """The issue's QA case: features of a SQuAD file at --squad-length, then 20 training steps, lists vs store."""
    args = argparse.Namespace(**{**vars(args), "max_seq_length": args.squad_length})  # the children's length
    data, cache = work / "squad.json", work / "cache-squad"
    doc = json.loads(args.squad.read_text(encoding="utf-8"))
    articles = []
    for k in range(args.squad_repeat):
        for article in doc["data"]:
            paragraphs = [{**p, "qas": [{**q, "id": f"{q['id']}-{k}"} for q in p["qas"]]} for p in article["paragraphs"]]
            articles.append({**article, "paragraphs": paragraphs})
    data.write_text(json.dumps({"version": doc.get("version", ""), "data": articles}), encoding="utf-8")
    shutil.rmtree(cache, ignore_errors=True)
    model = tiny_model(work / f"tiny-model-{args.squad_length}", args.vocab, max(128, args.squad_length))
    print(f"\nSQuAD {args.squad} (articles x{args.squad_repeat}) at max_seq_length {args.squad_length}")
    print(header.replace("examples", "question"))
    rows = {}
    for side in ("lists", "store", "cached"):
        rows[side] = spawn(side, data, cache, args)
        feature_row(side, rows[side])
    peaks = {}
    for side, mode in (("lists", "train-lists"), ("store (cached)", "train")):
        r = spawn(mode, data, cache, args, model)
        peaks[side] = r["peak_rss_mb"]
        print(f"train on it, features {side} (20 steps, tiny model): peak RSS {r['peak_rss_mb']:,.0f} MB, "
              f"{r['run_s']:.0f} s in all (read, validate, featurize, train)", flush=True)  # fmt: skip
    print(f"ratio lists/store: featurize peak RSS {rows['lists']['peak_rss_mb'] / rows['store']['peak_rss_mb']:.2f}x, "
          f"training run peak RSS {peaks['lists'] / peaks['store (cached)']:.2f}x; first/cached tokenize time "
          f"{rows['store']['featurize_s'] / rows['cached']['featurize_s']:.1f}x", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
