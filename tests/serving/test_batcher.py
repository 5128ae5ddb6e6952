"""The asyncio batcher: merging, token budget, max wait, order, bounded queue, failures, cancellation, close."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bertkit.serving.batcher import Batcher, BatchStats, QueueFull, ShuttingDown


class Recorder:
    """run_batch that records each batch and the thread it ran on; doubles each item."""

    def __init__(self, delay: float = 0.0, fail_on: object = None):
        self.batches: list[list] = []
        self.threads: set[str] = set()
        self.delay, self.fail_on = delay, fail_on

    def __call__(self, items: list) -> list:
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(items))
        if self.delay:
            time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError("model failed")
        return [2 * x for x in items]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.fixture
def executor():
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
    yield pool
    pool.shutdown(wait=True)


def test_concurrent_requests_merge_into_one_batch_and_get_their_own_results(executor):
    rec = Recorder()
    stats: list[BatchStats] = []

    async def main():
        b = Batcher(rec, executor, max_wait_ms=50, on_batch=stats.append)
        results = await asyncio.gather(*(b.submit([10 * i, 10 * i + 1], [3, 4]) for i in range(5)))
        await b.close()
        return results

    results = run(main())
    assert results == [[20 * i, 20 * i + 2] for i in range(5)]
    assert len(rec.batches) == 1 and sorted(rec.batches[0]) == sorted(
        x for i in range(5) for x in (10 * i, 10 * i + 1)
    )
    assert rec.threads == {"model_0"}  # the model ran in the worker thread, not on the event loop
    assert stats[0].size == 10 and stats[0].tokens == 5 * 7


def test_token_budget_splits_batches_by_padded_cost(executor):
    rec = Recorder()

    async def main():
        # cost = texts x longest: 10 tokens each, budget 30 -> at most 3 per batch
        b = Batcher(rec, executor, max_batch_tokens=30, max_wait_ms=20)
        out = await b.submit(list(range(7)), [10] * 7)
        await b.close()
        return out

    assert run(main()) == [2 * i for i in range(7)]
    assert [len(x) for x in rec.batches] == [3, 3, 1]


@pytest.mark.parametrize(("padded", "sizes"), [(True, [2, 3, 1]), (False, [5, 1])])
def test_mixed_lengths_cost_the_padding_only_for_a_padded_model(executor, padded, sizes):
    rec = Recorder()

    async def main():
        # budget 20: padded, texts x longest ([2, 10] = 20; [2, 2, 2] = 6, a 10 more would make 40); packed,
        # the real tokens (2 + 10 + 2 + 2 + 2 = 18; the last 10 would make 28)
        b = Batcher(rec, executor, max_batch_tokens=20, max_wait_ms=20, padded=padded)
        out = await b.submit(list(range(6)), [2, 10, 2, 2, 2, 10])
        await b.close()
        return out

    assert run(main()) == [2 * i for i in range(6)]
    assert [len(x) for x in rec.batches] == sizes
    assert [x for batch in rec.batches for x in batch] == list(range(6))  # FIFO either way


def test_a_text_longer_than_the_budget_runs_alone(executor):
    rec = Recorder()

    async def main():
        b = Batcher(rec, executor, max_batch_tokens=8, max_wait_ms=0)
        out = await b.submit([1, 2, 3], [2, 50, 2])
        await b.close()
        return out

    assert run(main()) == [2, 4, 6]
    assert rec.batches == [[1], [2], [3]]


def test_max_batch_size(executor):
    rec = Recorder()

    async def main():
        b = Batcher(rec, executor, max_batch_size=4, max_wait_ms=20)
        out = await b.submit(list(range(10)), [1] * 10)
        await b.close()
        return out

    run(main())
    assert [len(x) for x in rec.batches] == [4, 4, 2]


def test_max_wait_gathers_companions_only_when_requests_come_quickly(executor):
    rec = Recorder()

    async def main():
        b = Batcher(rec, executor, max_wait_ms=150)
        start = time.perf_counter()
        await b.submit(["lone"], [5])  # no arrival history: runs at once
        lone = time.perf_counter() - start
        first = asyncio.ensure_future(b.submit(["a"], [5]))
        await asyncio.sleep(0.01)
        start = time.perf_counter()
        second = asyncio.ensure_future(b.submit(["b"], [5]))  # traffic is dense: the batch waits for more
        await asyncio.sleep(0.05)
        third = asyncio.ensure_future(b.submit(["c"], [5]))  # arrives inside b's window and joins its batch
        await asyncio.gather(first, second, third)
        waited = time.perf_counter() - start
        await asyncio.sleep(1.2)  # traffic stops; the smoothed gap grows past max_wait
        start = time.perf_counter()
        await b.submit(["late"], [5])
        late = time.perf_counter() - start
        await b.close()
        return lone, waited, late

    lone, waited, late = run(main())
    assert lone < 0.1 and late < 0.1  # a lone request never waits for companions that are not coming
    assert 0.1 <= waited < 5  # the window stayed open for "c"
    assert any({"b", "c"} <= set(batch) for batch in rec.batches)


def test_full_queue_refuses_at_once_with_retry_after(executor):
    rec = Recorder(delay=0.3)

    async def main():
        b = Batcher(rec, executor, max_queue=4, max_batch_size=2, max_wait_ms=0)
        first = asyncio.ensure_future(b.submit([1, 2], [1, 1]))
        await asyncio.sleep(0.05)  # first batch is running; the queue is empty again
        waiting = asyncio.ensure_future(b.submit([3, 4, 5], [1, 1, 1]))
        await asyncio.sleep(0.01)
        assert b.queued == 3
        start = time.perf_counter()
        with pytest.raises(QueueFull) as info:
            await b.submit([6, 7], [1, 1])
        refused_in = time.perf_counter() - start
        results = await asyncio.gather(first, waiting)
        await b.close()
        return info.value, refused_in, results

    err, refused_in, results = run(main())
    assert refused_in < 0.05 and err.retry_after >= 1
    assert results == [[2, 4], [6, 8, 10]]  # the accepted requests are unaffected


def test_model_error_reaches_every_caller_in_the_batch_and_the_loop_survives(executor):
    rec = Recorder(fail_on=3)

    async def main():
        b = Batcher(rec, executor, max_wait_ms=30)
        outcomes = await asyncio.gather(b.submit([1, 2], [1, 1]), b.submit([3], [1]), return_exceptions=True)
        after = await b.submit([4], [1])
        await b.close()
        return outcomes, after

    outcomes, after = run(main())
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert after == [8]


def test_cancelled_caller_texts_are_skipped(executor):
    rec = Recorder(delay=0.2)

    async def main():
        b = Batcher(rec, executor, max_wait_ms=0, max_batch_size=1)
        busy = asyncio.ensure_future(b.submit([1], [1]))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(b.submit([2, 3], [1, 1]))
        await asyncio.sleep(0.01)
        gone.cancel()
        await busy
        await b.close()

    run(main())
    assert rec.batches == [[1]]  # 2 and 3 never reached the model


def test_close_finishes_queued_work_then_refuses(executor):
    rec = Recorder(delay=0.05)

    async def main():
        b = Batcher(rec, executor, max_wait_ms=0, max_batch_size=1)
        pending = [asyncio.ensure_future(b.submit([i], [1])) for i in range(4)]
        await asyncio.sleep(0.01)
        await b.close()
        assert all(p.done() for p in pending)
        with pytest.raises(ShuttingDown):
            await b.submit([9], [1])
        return [p.result() for p in pending]

    assert run(main()) == [[0], [2], [4], [6]]


def test_bad_limits_are_refused(executor):
    with pytest.raises(ValueError, match="max_queue"):
        Batcher(Recorder(), executor, max_queue=0)


def test_a_lone_small_request_runs_on_the_event_loop_and_a_larger_batch_in_the_worker(executor):
    rec = Recorder()

    async def main():
        b = Batcher(rec, executor, max_wait_ms=20, inline_max_tokens=16)
        loop_thread = threading.current_thread().name
        first = await b.submit([1], [16])  # alone and small: no hop to the model thread
        threads_after_first = set(rec.threads)
        big = await b.submit([2, 3], [9, 9])  # 2 x 9 = 18 tokens > 16: the worker
        await asyncio.sleep(0.05)
        burst = await asyncio.gather(
            *(b.submit([10 + i], [4]) for i in range(4))
        )  # companions queued: worker
        await b.close()
        return loop_thread, first, threads_after_first, big, burst

    loop_thread, first, threads_after_first, big, burst = run(main())
    assert first == [2] and big == [4, 6] and burst == [[20], [22], [24], [26]]
    assert threads_after_first == {loop_thread}
    assert rec.threads == {loop_thread, "model_0"}
    assert [sorted(x) for x in rec.batches[2:]] == [[10, 11, 12, 13]]  # the burst still merged


def test_no_inline_run_while_the_shared_executor_is_busy(executor):
    slow, fast = Recorder(delay=0.2), Recorder()

    async def main():
        a = Batcher(slow, executor, max_wait_ms=0, inline_max_tokens=0)
        b = Batcher(fast, executor, max_wait_ms=0, inline_max_tokens=100)
        running = asyncio.ensure_future(a.submit([1], [200]))
        await asyncio.sleep(0.05)  # a's batch now runs on the shared executor
        result = await b.submit([5], [3])
        await running
        await a.close()
        await b.close()
        return result

    assert run(main()) == [10]
    assert fast.threads == {
        "model_0"
    }  # waited its turn on the model thread, never ran beside the other batch
