"""Load benchmark for `bertkit serve` on loopback: mixed requests at a fixed concurrency, against bertkit's
batching server and against a naive server (transformers behind the same framework, no batching across
requests: its feature-extraction pipeline by default, or --naive automodel: one request per forward), plus offline batched throughput and batch-1 latency over HTTP, all in one run.

    python bench/bench_serve.py                       # 5,000 requests, concurrency 64, all-MiniLM-L6-v2
    python bench/bench_serve.py --requests 1000 --skip-naive
    python bench/bench_serve.py --openai --requests 1500 --rounds 3   # /v1/embeddings vs /encode, interleaved

Loopback only (127.0.0.1), bounded in count (--requests) and time (--phase-timeout); servers are
subprocesses that the script stops. Sentences: SST-2 dev from ../shared/data when present, else built in.
Printed: requests/s, texts/s, p50/p99 latency, failures (non-200 other than 503), 503s, the served/offline
throughput ratio (goal >= 0.8), the batching gain over the naive server (goal >= 3x), and batch-1 p50 over
HTTP against the same text in this process, for bertkit serve and for the floor: a bare ASGI function with the
same Backend under the same uvicorn, the least any Python HTTP server can add on this machine.
Everything runs at libgomp's default thread wait policy, as a user's `bertkit serve` and `bertkit encode` do
(set OMP_WAIT_POLICY to measure another); the latency sides take turns in blocks, after a pause each, so that
one side's spinning threads never slow the next.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling serve_client
from serve_client import (  # noqa: E402
    LATENCY_TEXT,
    Result,
    as_openai,
    cpu_seconds,
    free_port,
    latency_b1,
    make_load,
    run_load,
    scrape,
    sentences,
    start,
    stop,
)


def compare_openai(port: int, pid: int, load: list, warm: list, args: argparse.Namespace) -> int:
    """/encode and /v1/embeddings on the same server with the same texts, interleaved round by round."""
    import statistics

    rates: dict[str, list[float]] = {"/encode": [], "/v1/embeddings": []}
    cpu: dict[str, list[float]] = {"/encode": [], "/v1/embeddings": []}  # server CPU ms per text
    openai_load = as_openai(load, args.openai_format)
    asyncio.run(run_load(port, warm, args.concurrency, args.phase_timeout))
    asyncio.run(run_load(port, as_openai(warm, args.openai_format), args.concurrency, args.phase_timeout))
    failures = 0
    for r in range(args.rounds):
        phases = [("/encode", load), ("/v1/embeddings", openai_load)]
        for name, requests in phases if r % 2 == 0 else phases[::-1]:  # alternate which side goes first
            before = cpu_seconds(pid)
            result = asyncio.run(run_load(port, requests, args.concurrency, args.phase_timeout))
            cpu[name].append(1000 * (cpu_seconds(pid) - before) / max(result.texts, 1))
            failures += result.failures
            rates[name].append(result.texts / result.seconds)
            print(f"round {r + 1} {name}: {result.texts / result.seconds:.1f} texts/s, {result.done / result.seconds:.1f} "
                  f"req/s, p50 {result.pct(0.5):.0f} ms, p99 {result.pct(0.99):.0f} ms, server CPU {cpu[name][-1]:.2f} ms/text, "
                  f"statuses {result.statuses}")  # fmt: skip
    enc, oai = statistics.median(rates["/encode"]), statistics.median(rates["/v1/embeddings"])
    ratios = [o / e for e, o in zip(rates["/encode"], rates["/v1/embeddings"], strict=True)]
    cpu_e, cpu_o = statistics.median(cpu["/encode"]), statistics.median(cpu["/v1/embeddings"])
    print(f"per-round throughput ratios: {', '.join(f'{x:.3f}' for x in ratios)}; median {statistics.median(ratios):.3f}")
    print(f"median server CPU per text: /encode {cpu_e:.2f} ms, /v1/embeddings {cpu_o:.2f} ms; ratio {cpu_e / cpu_o:.3f}")
    print(
        f"median texts/s: /encode {enc:.1f}, /v1/embeddings ({args.openai_format}) {oai:.1f}; ratio {oai / enc:.3f} "
        "(goal >= 0.90)"
    )
    return 0 if failures == 0 else 1


def serve_backend(model: str, serve_args: str):
    """The server's own Backend, built here from the same `bertkit serve` flags."""
    import argparse

    from bertkit.cli.serve import add_parser
    from bertkit.serving.backend import Backend
    from bertkit.serving.config import ServeConfig

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = vars(parser.parse_args(["serve", "--model", model, *serve_args.split()]))
    names = {f.name for f in dataclasses.fields(ServeConfig)}
    return Backend(ServeConfig.from_env(**{k: v for k, v in args.items() if k in names}))


def in_process(model: str, serve_args: str):
    """One /encode's work with the server's own Backend, with no HTTP and no batcher."""
    backend = serve_backend(model, serve_args)

    def encode_once() -> None:
        backend.embed(backend.tokenize([LATENCY_TEXT], None))

    return encode_once


def floor_server(model: str, port: int, serve_args: str) -> None:
    """The leanest Python server for /encode: a bare ASGI function under the same uvicorn (uvloop,
    httptools), the server's own Backend called inline on the event loop, orjson. No routing, validation,
    batcher, limits or metrics: what it adds over the in-process call is the floor any Python HTTP server
    pays on this machine."""
    import numpy as np
    import orjson
    import uvicorn

    from bertkit.serving.tei_routes import normalized

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # as `bertkit serve`
    backend = serve_backend(model, serve_args)

    async def app(scope: dict, receive, send) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        if scope["path"] == "/health":
            out = b'{"status":"ok"}'
        else:
            vectors = np.stack(backend.embed(backend.tokenize(orjson.loads(body)["texts"], None)))
            if backend.normalize:
                vectors = normalized(vectors)
            out = orjson.dumps({"embeddings": vectors}, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    sys.setswitchinterval(0.001)  # as `bertkit serve`
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


def naive_server(model: str, port: int, kind: str) -> None:
    """transformers behind FastAPI/uvicorn, no batching across requests. kind "pipeline": the
    feature-extraction pipeline with its defaults (what the issue names; it runs one text per forward);
    kind "automodel": AutoModel on the request's texts padded together (one request = one forward)."""
    import torch
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel
    from transformers import AutoModel, AutoTokenizer, pipeline

    tok = AutoTokenizer.from_pretrained(model)
    net = AutoModel.from_pretrained(model).eval()
    pipe = pipeline("feature-extraction", model=net, tokenizer=tok, device="cpu") if kind == "pipeline" else None
    app = FastAPI()

    class Texts(BaseModel):
        texts: list[str]

    globals()["Texts"] = Texts  # FastAPI resolves the (postponed) annotation in the module's namespace

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.post("/encode")
    async def encode(req: Texts) -> dict:
        if pipe is not None:  # one [1, tokens, hidden] tensor per text, no padding: the plain mean is exact
            outputs = pipe(req.texts, return_tensors=True, tokenize_kwargs={"truncation": True, "max_length": 256})
            return {"embeddings": [o[0].mean(0).tolist() for o in outputs]}
        batch = tok(req.texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            hidden = net(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        vectors = (hidden * mask).sum(1) / mask.sum(1)
        return {"embeddings": vectors.tolist()}

    @app.post("/tokenize")
    async def tokenize(req: Texts) -> dict:
        return {"tokens": [{"ids": ids} for ids in tok(req.texts)["input_ids"]]}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def offline_throughput(
    model: str, load: list[tuple[str, bytes, int]], batch_sizes: list[int], compile: bool = False  # noqa: A002
) -> dict[int, float]:
    """Texts/s of the library's batched encode (FeatureExtractor) on exactly the texts of the load, per batch size;
    compiled like the server when it runs with --compile."""
    from bertkit.inference.features import FeatureExtractor

    texts = [t for path, body, k in load if k for t in json.loads(body)["texts"]][:3000]  # bounded in time
    fe = FeatureExtractor.from_pretrained(model, compile=compile)
    fe.encode(texts[:256], batch_size=32)  # warm up
    speeds = {}
    for batch_size in batch_sizes:
        start = time.perf_counter()
        fe.encode(texts, batch_size=batch_size)
        speeds[batch_size] = len(texts) / (time.perf_counter() - start)
    return speeds


def report(name: str, r: Result) -> None:
    print(
        f"{name}: {r.done} requests in {r.seconds:.1f} s = {r.done / r.seconds:.1f} req/s, "
        f"{r.texts / r.seconds:.1f} texts/s; latency p50 {r.pct(0.5):.1f} ms, p99 {r.pct(0.99):.1f} ms; "
        f"failures {r.failures}, 503s {r.statuses.get(503, 0)}, statuses {dict(sorted(r.statuses.items()))}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm", help="model folder or alias (default: minilm)")
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--phase-timeout", type=float, default=240.0, help="seconds each load phase may run")
    p.add_argument("--latency-requests", type=int, default=300)
    p.add_argument("--offline-batch-sizes", default="8,16,32,64", help="offline reference: the best of these")
    p.add_argument("--skip-naive", action="store_true")
    p.add_argument("--naive", default="pipeline", choices=["pipeline", "automodel"],
                   help="the baseline: transformers' feature-extraction pipeline (default) or AutoModel with the "
                   "request's texts padded into one forward")  # fmt: skip
    p.add_argument("--latency-only", action="store_true", help="only the batch-1 latency (any backend)")
    p.add_argument("--serve-args", default="", help="extra `bertkit serve` flags, e.g. '--backend onnx'")
    p.add_argument("--openai", action="store_true",
                   help="only compare /v1/embeddings with /encode on the same load (interleaved, --rounds times)")
    p.add_argument("--openai-format", default="base64", choices=["base64", "float"],
                   help="encoding_format of the /v1/embeddings requests (base64: the openai SDK's default)")
    p.add_argument("--rounds", type=int, default=3, help="--openai: rounds of the two loads, medians reported")
    p.add_argument("--naive-server", type=int, default=None, help=argparse.SUPPRESS)  # internal: the baseline
    p.add_argument("--floor-server", type=int, default=None, help=argparse.SUPPRESS)  # internal: the floor
    args = p.parse_args()
    if args.naive_server is not None:
        naive_server(args.model, args.naive_server, args.naive)
        return 0
    if args.floor_server is not None:
        floor_server(args.model, args.floor_server, args.serve_args)
        return 0

    from bertkit.weights.load import model_folder, resolve_model_path

    model = str(model_folder(resolve_model_path(args.model)))
    env = dict(os.environ)
    texts = sentences()
    load = make_load(args.requests, texts)
    warm = make_load(200, texts, seed=1)
    print(
        f"model {args.model}, serve flags '{args.serve_args}'; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} (other work on the machine), "
        f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset (libgomp spins ~8 ms after a call)')}"
    )
    if not args.latency_only:
        print(
            f"load: {len(load)} requests ({sum(k for _, _, k in load)} texts to encode, "
            f"{sum(1 for x in load if x[0] == '/tokenize')} /tokenize), concurrency {args.concurrency}"
        )

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "bertkit.cli.main",
        "serve",
        "--model",
        model,
        "--port",
        str(port),
        "--log-level",
        "warning",
        *args.serve_args.split(),
    ]
    compiled = "--compile" in args.serve_args.split()
    batch_sizes = [int(x) for x in args.offline_batch_sizes.split(",")]
    offline_passes: list[dict[int, float]] = []
    offline_cpu = 0.0

    def offline_pass() -> None:
        nonlocal offline_cpu
        cpu_start = time.process_time()
        offline_passes.append(offline_throughput(model, load, batch_sizes, compiled))
        offline_cpu += time.process_time() - cpu_start

    if not args.latency_only and not args.openai:
        # the offline reference brackets the load, a pass before and one after: this VM's speed drifts by
        # up to 2x within minutes, and one pass at another moment than the load made the ratio swing
        offline_pass()
    proc = start(cmd, port, env)
    if args.openai:
        try:
            return compare_openai(port, proc.pid, load, warm, args)
        finally:
            stop(proc)
    try:
        if not args.latency_only:
            asyncio.run(run_load(port, warm, args.concurrency, args.phase_timeout))
            server_cpu, client_cpu = cpu_seconds(proc.pid), time.process_time()
            before = asyncio.run(scrape(port))
            served = asyncio.run(run_load(port, load, args.concurrency, args.phase_timeout))
            after = asyncio.run(scrape(port))
            server_cpu, client_cpu = cpu_seconds(proc.pid) - server_cpu, time.process_time() - client_cpu
        local = in_process(model, args.serve_args)
        floor_port = free_port()
        floor_cmd = [sys.executable, __file__, "--model", model, "--serve-args", args.serve_args]
        floor = start([*floor_cmd, "--floor-server", str(floor_port)], floor_port, env)
        try:
            ports = {"bertkit": port, "floor": floor_port}
            times = asyncio.run(latency_b1(ports, args.latency_requests, local))
        finally:
            stop(floor)
    finally:
        stop(proc)
    here = times["in-process"].pct(0.5)
    print(
        f"batch-1 latency, 16-token sentence, {args.latency_requests} sequential requests per server and as "
        "many calls of the same text in this process (the server's Backend: tokenize + forward + pooling, "
        "no HTTP), the three taking turns in blocks of 20, each block after 50 ms of quiet; in-process p50 "
        f"{here:.2f} ms:"
    )
    for name, what in (
        ("bertkit", "bertkit serve"),
        ("floor", "floor: a bare ASGI function under the same uvicorn, the same Backend inline, orjson"),
    ):
        b1 = times[name]
        print(
            f"  {what}: HTTP p50 {b1.pct(0.5):.2f} ms (p99 {b1.pct(0.99):.2f}, min {b1.pct(0):.2f}); "
            f"HTTP - in-process p50: {b1.pct(0.5) - here:+.2f} ms"
            + (" (goal: within 1 ms)" if name == "bertkit" else "")
        )
    if args.latency_only:
        return 0
    report("bertkit serve", served)
    print(
        f"CPU time during the load: server {server_cpu:.1f} s ({1000 * server_cpu / max(served.texts, 1):.2f} ms per "
        f"text), load generator {client_cpu:.1f} s, wall {served.seconds:.1f} s"
    )
    busy = after["bertkit_batch_duration_seconds_sum"] - before["bertkit_batch_duration_seconds_sum"]
    batches = after["bertkit_batch_size_count"] - before["bertkit_batch_size_count"]
    texts_in = after["bertkit_batch_size_sum"] - before["bertkit_batch_size_sum"]
    print(
        f"model busy {100 * busy / served.seconds:.0f}% of the wall time; {batches:.0f} batches, "
        f"{texts_in / max(batches, 1):.1f} texts per batch"
    )
    offline_pass()
    served_tps = served.texts / served.seconds
    for when, speeds in zip(("before", "after"), offline_passes, strict=True):
        print(
            f"offline batched encode (FeatureExtractor{', compiled' if compiled else ''}, the load's first "
            f"3000 texts), {when} the load: "
            + ", ".join(f"batch {b}: {v:.1f} texts/s" for b, v in speeds.items())
        )
    n_offline = min(3000, sum(k for _, _, k in load)) * len(batch_sizes) * len(offline_passes)
    print(f"offline CPU time: {1000 * offline_cpu / n_offline:.2f} ms per text (model loading included)")
    best = max(v for speeds in offline_passes for v in speeds.values())
    print(
        f"served / best offline throughput (either pass): {served_tps:.1f} / {best:.1f} = "
        f"{served_tps / best:.2f} (goal >= 0.8)"
    )

    if not args.skip_naive:
        port = free_port()
        proc = start([sys.executable, __file__, "--model", model, "--naive", args.naive, "--naive-server", str(port)], port, env)
        try:
            asyncio.run(run_load(port, warm, args.concurrency, args.phase_timeout))
            naive_cpu = cpu_seconds(proc.pid)
            naive = asyncio.run(run_load(port, load, args.concurrency, args.phase_timeout))
            naive_cpu = cpu_seconds(proc.pid) - naive_cpu
        finally:
            stop(proc)
        what = {"pipeline": "feature-extraction pipeline", "automodel": "AutoModel, one request per forward"}
        report(f"naive (transformers {what[args.naive]})", naive)
        gain = (served.done / served.seconds) / (naive.done / naive.seconds)
        cpu_gain = (naive_cpu / max(naive.texts, 1)) / (server_cpu / max(served.texts, 1))
        print(
            f"naive server CPU: {naive_cpu:.1f} s ({1000 * naive_cpu / max(naive.texts, 1):.2f} ms per text)"
        )
        print(
            f"batching gain (bertkit req/s / naive req/s): {gain:.2f}x (goal >= 3x); "
            f"in CPU per text: {cpu_gain:.2f}x"
        )
    return 0 if served.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
