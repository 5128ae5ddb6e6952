"""The load side of bench/bench_serve.py: the texts, the request mixes, a minimal HTTP/1.1 keep-alive client
(the load generator must not eat the server's CPU), load and batch-1 latency runs, and server processes."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SST2_DEV = REPO.parent / "shared" / "data" / "glue" / "SST-2" / "dev.tsv"
FALLBACK = [
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
    "allows us to hope that nolan is poised to embark a major career as a commercial yet inventive filmmaker .",
    "the acting , costumes , music , cinematography and sound are all astounding given the production 's austere locales .",
    "it 's slow -- very , very slow .",
    "although laced with humor and a few fanciful touches , the film is a refreshingly serious look at young women .",
    "a sometimes tedious film .",
    "or doing last year 's taxes with your ex-wife .",
]
# A 16-token input ([CLS] + 14 WordPieces + [SEP]) for the batch-1 latency figure.
LATENCY_TEXT = "the film is a charming and often affecting journey through a world of wonder"


def sentences() -> list[str]:
    if SST2_DEV.is_file():
        lines = SST2_DEV.read_text(encoding="utf-8").splitlines()[1:]
        return [line.split("\t")[0] for line in lines if line.strip()]
    return FALLBACK


def make_load(n: int, texts: list[str], seed: int = 0) -> list[tuple[str, bytes, int]]:
    """n requests (path, JSON body, texts the model reads): 60% one text, 25% 2-4, 10% 5-16, 5% /tokenize."""
    rng = random.Random(seed)
    load = []
    for _ in range(n):
        r = rng.random()
        if r < 0.05:
            load.append(("/tokenize", json.dumps({"texts": [rng.choice(texts)]}).encode(), 0))
            continue
        k = 1 if r < 0.65 else rng.randint(2, 4) if r < 0.90 else rng.randint(5, 16)
        batch = [rng.choice(texts) for _ in range(k)]
        load.append(("/encode", json.dumps({"texts": batch}).encode(), k))
    return load


def as_openai(load: list[tuple[str, bytes, int]], encoding_format: str) -> list[tuple[str, bytes, int]]:
    """The same requests as OpenAI embeddings calls: {"texts": [...]} -> {"input": [...], "model", "encoding_format"}."""
    out = []
    for path, body, k in load:
        if path == "/encode":
            texts = json.loads(body)["texts"]
            body = json.dumps({"input": texts, "model": "bench", "encoding_format": encoding_format}).encode()
            path = "/v1/embeddings"
        out.append((path, body, k))
    return out


# ---- a minimal HTTP/1.1 keep-alive client: the load generator must not eat the server's CPU ------------


class Connection:
    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and "close" in value.lower():
                close = True
        payload = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Result:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    texts: int = 0
    errors: int = 0

    @property
    def done(self) -> int:
        return len(self.latencies)

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies)
        return 1000 * xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    @property
    def failures(self) -> int:
        return self.errors + sum(n for s, n in self.statuses.items() if s not in (200, 503))


async def run_load(port: int, load: list[tuple[str, bytes, int]], concurrency: int, timeout: float) -> Result:
    queue = list(reversed(load))
    result = Result(0.0)
    deadline = time.perf_counter() + timeout

    async def worker() -> None:
        conn = Connection(port)
        while queue and time.perf_counter() < deadline:
            path, body, k = queue.pop()
            start = time.perf_counter()
            try:
                status, _ = await asyncio.wait_for(
                    conn.request("POST", path, body), max(0.1, deadline - start)
                )
            except (OSError, ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                result.errors += 1
                conn.close()
                continue
            result.latencies.append(time.perf_counter() - start)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == 200:
                result.texts += k
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - start
    return result


async def latency_b1(
    ports: dict[str, int], n: int, local=None, block: int = 20, settle: float = 0.05
) -> dict[str, Result]:
    """Sequential one-text /encode requests to each server, n per server, and with `local` n calls of the same
    text in this process (side "in-process"). The sides take turns in blocks of `block` (so a slow minute on a
    shared machine hits every side alike), each block after `settle` seconds of quiet: OpenMP threads that
    spin after a forward (libgomp's default, ~8 ms here) must not steal the CPU from the next side, which a
    server's worker and this process's would do to each other if the sides alternated call by call."""
    body = json.dumps({"texts": [LATENCY_TEXT]}).encode()
    conns = {name: Connection(port) for name, port in ports.items()}

    async def over_http(name: str) -> int:
        status, _ = await conns[name].request("POST", "/encode", body)
        return status

    async def here() -> int:
        local()
        return 200

    sides = {name: (lambda name=name: over_http(name)) for name in conns}
    if local is not None:
        sides["in-process"] = here
    for call in sides.values():
        for _ in range(20):  # warm up
            await call()
    out = {name: Result(0.0) for name in sides}
    for start in range(0, n, block):
        names = list(sides)[(start // block) % len(sides) :] + list(sides)[: (start // block) % len(sides)]
        for name in names:
            result = out[name]
            await asyncio.sleep(settle)
            began = time.perf_counter()
            for _ in range(min(block, n - start)):
                t = time.perf_counter()
                status = await sides[name]()
                result.latencies.append(time.perf_counter() - t)
                result.statuses[status] = result.statuses.get(status, 0) + 1
            result.seconds += time.perf_counter() - began
    for conn in conns.values():
        conn.close()
    return out


# ---- servers ----------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), or nan elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


async def scrape(port: int) -> dict[str, float]:
    """A few totals from the server's /metrics."""
    _, text = await Connection(port).request("GET", "/metrics")
    out = {}
    for line in text.decode().splitlines():
        for name in (
            "bertkit_batch_duration_seconds_sum",
            "bertkit_batch_size_sum",
            "bertkit_batch_size_count",
        ):
            if line.startswith(name + '{route="/encode"}'):
                out[name] = float(line.rsplit(" ", 1)[1])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], port: int, env: dict[str, str], timeout: float = 300) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                if b" 200 " in s.recv(100):
                    return proc
        except OSError:
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError("server did not become healthy in time")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
