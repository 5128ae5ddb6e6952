"""Dynamic batching on asyncio: texts from concurrent requests are merged into model batches.

A request's texts enter one FIFO queue as units (one text each, with its token count). A batch is the longest
queue prefix whose cost fits `max_batch_tokens` and whose size fits `max_batch_size`: the padded cost (texts x
longest text) for a model that runs a padded (B, T) batch, the real tokens for one that drops the padding
(`padded=False`: bertkit's packed encoder). It starts when full, or once its oldest text has waited
`max_wait_ms` (under load the model is busy and texts wait anyway, so the wait only delays batches when the
server is idle). It waits only while requests arrive at least one per `max_wait_ms` (a smoothed inter-arrival
gap), so a lone request never waits for companions that are not coming. The model runs in one worker thread,
except for a lone small request (see `inline_max_tokens`); each caller gets its results back in its own order.
The queue is bounded: a request that would overflow it fails at once with QueueFull (the server's 503).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

# Batches running on each executor (by id), counted on the event loop: batchers that share one model
# executor (the /encode and /predict routes) run a batch inline only while that executor is idle.
_RUNNING: dict[int, int] = {}

T = TypeVar("T")
R = TypeVar("R")


class QueueFull(Exception):
    """The queue cannot take the request now; retry after `retry_after` seconds."""

    def __init__(self, queued: int, capacity: int, retry_after: float):
        super().__init__(f"the queue holds {queued} of {capacity} texts; retry in {retry_after:.0f} s")
        self.retry_after = retry_after


class ShuttingDown(Exception):
    """The server is stopping and accepts no new work."""


@dataclass
class _Request:
    future: asyncio.Future
    results: list[Any]
    remaining: int


@dataclass
class _Unit:
    item: Any
    tokens: int
    request: _Request
    index: int
    arrival: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class BatchStats:
    size: int
    tokens: int  # real tokens in the batch
    seconds: float  # model time in the worker thread


class Batcher(Generic[T, R]):
    """`await batcher.submit(items, tokens)` -> results in item order; `run_batch` does the model work.

    Args:
        run_batch: list of items -> list of results, same length and order; runs in the worker thread.
        executor: where run_batch runs; share one single-thread executor between batchers of one model.
        max_batch_tokens: token budget of a batch (a single longer text still runs alone): texts x longest
            text when `padded`, else the sum of the texts' tokens.
        padded: the model pays for the padding (a (B, T) batch: ONNX, a compiled encoder); False where it
            runs the real tokens only, so a batch of mixed lengths costs what its tokens cost.
        max_batch_size: most texts in one batch.
        max_wait_ms: how long the oldest queued text may wait for the batch to fill (only while requests
            arrive faster than one per max_wait_ms).
        max_queue: most texts queued (not yet in a batch); beyond it submit() raises QueueFull.
        on_batch: called on the event loop after each batch with its BatchStats.
        inline_max_tokens: a batch of at most this many tokens runs on the event loop thread itself when it
            is alone (nothing else queued, requests sparser than one per max_wait_ms, no batch running on the
            executor, and `alone()` says no other request is in flight): the hop to the worker thread and back
            costs two thread wake-ups, which on a busy CPU each wait for a time slice. The loop blocks only for
            a short forward, and only while idle; concurrent requests still meet in the worker. Before it
            decides, the loop gets two turns, so that requests whose bytes have already arrived are read and
            counted in flight (else a burst reaching an idle server could run inline one request at a time,
            each blocking the loop while the next waited unread). 0: never.
        alone: True when the server handles no request but this one (the server's in-flight gauge).
    """

    def __init__(
        self,
        run_batch: Callable[[list[T]], Sequence[R]],
        executor: Executor,
        *,
        max_batch_tokens: int = 16384,
        max_batch_size: int = 256,
        padded: bool = True,
        max_wait_ms: float = 1.0,
        max_queue: int = 2048,
        on_batch: Callable[[BatchStats], None] | None = None,
        inline_max_tokens: int = 0,
        alone: Callable[[], bool] | None = None,
    ):
        if min(max_batch_tokens, max_batch_size, max_queue) < 1 or min(max_wait_ms, inline_max_tokens) < 0:
            raise ValueError(
                "batcher limits must be positive (max_batch_tokens, max_batch_size, max_queue) and max_wait_ms, "
                f"inline_max_tokens >= 0; got {max_batch_tokens}, {max_batch_size}, {max_queue}, {max_wait_ms}, "
                f"{inline_max_tokens}"
            )
        self.run_batch, self.executor = run_batch, executor
        self.max_batch_tokens, self.max_batch_size = max_batch_tokens, max_batch_size
        self.padded = padded
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.inline_max_tokens = inline_max_tokens
        self.alone = alone
        self._queue: deque[_Unit] = deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False
        self._busy = False
        self._recent_batch_seconds = 0.05
        self._gap = float("inf")  # smoothed seconds between request arrivals; inf until two have arrived
        self._last_arrival: float | None = None

    @property
    def queued(self) -> int:
        """Texts waiting for a batch."""
        return len(self._queue)

    @property
    def idle(self) -> bool:
        return not self._queue and not self._busy

    def start(self) -> None:
        """Start the batching loop on the running event loop (the server's startup calls this)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="bertkit-batcher")

    async def submit(self, items: Sequence[T], tokens: Sequence[int]) -> list[R]:
        """Queue the items (tokens[i] = token count of items[i]) and wait for their results, in order."""
        if len(items) != len(tokens):
            raise ValueError(f"{len(items)} items but {len(tokens)} token counts")
        if self._closing:
            raise ShuttingDown("the server is shutting down")
        if not items:
            return []
        if self.queued + len(items) > self.max_queue:
            raise QueueFull(self.queued, self.max_queue, self.retry_after())
        if self._task is None:
            self.start()
        request = _Request(asyncio.get_running_loop().create_future(), [None] * len(items), len(items))
        now = time.monotonic()
        if self._last_arrival is not None:
            gap = min(now - self._last_arrival, 1.0)
            self._gap = gap if self._gap == float("inf") else 0.8 * self._gap + 0.2 * gap
        self._last_arrival = now
        self._queue.extend(
            _Unit(item, int(n), request, i, now)
            for i, (item, n) in enumerate(zip(items, tokens, strict=True))
        )
        self._arrived.set()
        return await request.future  # a cancelled caller cancels the future; its queued units are skipped

    def retry_after(self) -> float:
        """Seconds a refused client should wait: time to drain the queue at the recent batch rate (>= 1 s)."""
        batches = max(1.0, self.queued / self.max_batch_size)
        return max(1.0, round(batches * self._recent_batch_seconds))

    async def close(self) -> None:
        """Refuse new work, finish everything queued and running, then stop the loop."""
        self._closing = True
        while not self.idle:
            self._arrived.set()
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def _runs_inline(self, batch: list[_Unit]) -> bool:
        return (
            self._cost(len(batch), max(u.tokens for u in batch), sum(u.tokens for u in batch))
            <= self.inline_max_tokens
            and not self._queue
            and self._gap > self.max_wait
            and not _RUNNING.get(id(self.executor))
            and (self.alone is None or self.alone())
        )

    def _cost(self, count: int, longest: int, total: int) -> int:
        return count * longest if self.padded else total

    def _batch_is_full(self) -> bool:
        count, longest, total = 0, 0, 0
        for unit in self._queue:
            longest = max(longest, unit.tokens)
            count += 1
            total += unit.tokens
            if count >= self.max_batch_size or self._cost(count, longest, total) >= self.max_batch_tokens:
                return True
        return False

    def _take(self) -> list[_Unit]:
        batch: list[_Unit] = []
        longest, total = 0, 0
        while self._queue and len(batch) < self.max_batch_size:
            unit = self._queue[0]
            if unit.request.future.done():  # caller went away (cancelled) or failed earlier: skip its texts
                self._queue.popleft()
                continue
            new_longest, new_total = max(longest, unit.tokens), total + unit.tokens
            if batch and self._cost(len(batch) + 1, new_longest, new_total) > self.max_batch_tokens:
                break
            batch.append(self._queue.popleft())
            longest, total = new_longest, new_total
        return batch

    async def _wait_for_batch(self) -> None:
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()
        if self.max_wait <= 0 or self._closing or self._gap > self.max_wait:
            return  # requests arrive more slowly than one per max_wait: waiting would only add latency
        deadline = self._queue[0].arrival + self.max_wait
        while not self._batch_is_full():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                return

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wait_for_batch()
            if self.inline_max_tokens and self._gap > self.max_wait:
                # Before a batch may run inline (blocking the loop), two turns of the loop: requests whose bytes
                # have arrived are read and enter the server (counted in flight), so they are not each run alone.
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            batch = self._take()
            if not batch:
                continue
            self._busy = True
            start = time.perf_counter()
            items = [u.item for u in batch]
            try:
                if self._runs_inline(batch):
                    results = self.run_batch(items)
                else:
                    _RUNNING[id(self.executor)] = _RUNNING.get(id(self.executor), 0) + 1
                    try:
                        results = await loop.run_in_executor(self.executor, self.run_batch, items)
                    finally:
                        _RUNNING[id(self.executor)] -= 1
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
            except Exception as err:  # noqa: BLE001 - the error goes to every caller in the batch
                logger.exception("batch of %d failed", len(batch))
                for unit in batch:
                    if not unit.request.future.done():
                        unit.request.future.set_exception(err)
                continue
            finally:
                self._busy = False
            seconds = time.perf_counter() - start
            self._recent_batch_seconds = 0.8 * self._recent_batch_seconds + 0.2 * seconds
            for unit, result in zip(batch, results, strict=True):
                request = unit.request
                if request.future.done():
                    continue
                request.results[unit.index] = result
                request.remaining -= 1
                if request.remaining == 0:
                    request.future.set_result(request.results)
            if self.on_batch is not None:
                self.on_batch(BatchStats(len(batch), sum(u.tokens for u in batch), seconds))
