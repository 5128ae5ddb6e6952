"""The server's model thread (serving.model_thread.ModelThread): one call at a time in submission order, errors
to the caller, and a thread that ends when idle, taking its OpenMP worker team with it (counted in threads)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import CancelledError

import pytest

from bertkit.serving.batcher import Batcher
from bertkit.serving.model_thread import ModelThread


def _until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_calls_run_one_at_a_time_in_order_and_the_thread_ends_when_idle():
    pool = ModelThread()
    running, log, names = [0], [], set()

    def work(i: int) -> int:
        running[0] += 1
        assert running[0] == 1  # never two at once
        names.add(threading.current_thread().name)
        time.sleep(0.002)
        log.append(i)
        running[0] -= 1
        return i * i

    futures = [pool.submit(work, i) for i in range(20)]
    assert [f.result(10) for f in futures] == [i * i for i in range(20)]
    assert log == list(range(20))
    assert _until(lambda: not pool.alive)
    assert pool.threads_started == 1 and names == {"bertkit-model-1"}
    assert pool.submit(work, 5).result(10) == 25  # a new busy period, a new thread
    assert pool.threads_started == 2
    pool.shutdown(wait=True)
    assert not pool.alive


def test_errors_reach_the_caller_and_the_next_call_still_runs():
    pool = ModelThread()

    def fail() -> None:
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        pool.submit(fail).result(10)
    assert pool.submit(lambda: "ok").result(10) == "ok"
    pool.shutdown()


def test_shutdown_waits_cancels_on_request_and_refuses_new_work():
    pool = ModelThread()
    started, gate = threading.Event(), threading.Event()
    first = pool.submit(lambda: started.set() or gate.wait(10))
    queued = pool.submit(lambda: "never")
    assert started.wait(10)  # the first call is running (a queued one would be cancelled too)
    stopper = threading.Thread(target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True})
    stopper.start()
    time.sleep(0.05)
    assert stopper.is_alive()  # waiting for the running call
    gate.set()
    stopper.join(10)
    assert first.result(1) is True
    with pytest.raises(CancelledError):
        queued.result(1)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(lambda: None)


def test_the_batcher_runs_batches_on_it():
    pool = ModelThread()
    threads: set[str] = set()

    def run_batch(items: list) -> list:
        threads.add(threading.current_thread().name)
        return [2 * x for x in items]

    async def main() -> list:
        b = Batcher(run_batch, pool, max_wait_ms=50)
        b.start()
        try:
            return await asyncio.gather(*(b.submit([i], [3]) for i in range(6)))
        finally:
            await b.close()

    assert asyncio.run(asyncio.wait_for(main(), 30)) == [[2 * i] for i in range(6)]
    assert threads and all(t.startswith("bertkit-model") for t in threads)
    assert _until(lambda: not pool.alive)
    pool.shutdown()


# A fresh process: the main thread runs a parallel matmul (its OpenMP team: one worker at 2 threads), then an
# executor's thread runs one; the process's OS threads when that executor is idle again, against before.
TEAMS = """
import json, os, sys, time, torch
from concurrent.futures import ThreadPoolExecutor
from bertkit.serving.model_thread import ModelThread
torch.set_num_threads(2)
a = torch.randn(512, 512)
a @ a
before = len(os.listdir("/proc/self/task"))
pool = ModelThread() if sys.argv[1] == "model-thread" else ThreadPoolExecutor(max_workers=1)
pool.submit(lambda: a @ a).result()
deadline = time.monotonic() + 5
while len(os.listdir("/proc/self/task")) > before and time.monotonic() < deadline:
    time.sleep(0.01)
print(json.dumps([before, len(os.listdir("/proc/self/task"))]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
def test_an_idle_model_thread_leaves_no_openmp_team_behind():
    """With ThreadPoolExecutor the worker thread and its OpenMP worker stay (two teams in the process: libgomp
    stops spinning, and every parallel region of a lone forward on the event loop wakes a sleeping thread);
    with ModelThread both are gone once it is idle."""
    counts = {}
    for kind in ("model-thread", "thread-pool"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}  # xdist workers set 1 thread
        out = subprocess.run([sys.executable, "-c", TEAMS, kind], capture_output=True, text=True, check=True,
                             env=env, timeout=120)  # fmt: skip
        counts[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    before, after = counts["model-thread"]
    assert after == before, counts
    before, after = counts["thread-pool"]
    assert after == before + 2, counts  # the pool's thread and its OpenMP worker
