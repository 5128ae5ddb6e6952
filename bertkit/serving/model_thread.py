"""The model's worker thread, which exits whenever it has nothing to do.

Every thread that runs torch ops on the CPU becomes an OpenMP master with a worker team of its own, and libgomp
keeps that team for as long as the thread lives. The server runs torch on two threads: the event loop (a lone
small request runs inline there) and the model thread (batches). Once both have teams, libgomp manages more
threads than there are CPUs and stops spinning between parallel regions, so each of a forward's ~100 regions
wakes a sleeping worker: on the 2-vCPU machine of 2026-12-04 a lone 16-token /encode took 16.5 ms p50 before
the first batch and 24 ms after it, for the rest of the server's life. A model thread that exits when idle
takes its team with it; the next batch starts a new thread (and team), a fraction of a millisecond against a
batch's tens to hundreds.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any


class ModelThread(Executor):
    """An executor of one thread at a time, in submission order, whose thread ends when its queue is empty."""

    def __init__(self, name: str = "bertkit-model"):
        self.name = name
        self._lock = threading.Lock()
        self._queue: deque[tuple[Future, Callable, tuple, dict]] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.threads_started = 0  # one per busy period

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._queue.append((future, fn, args, kwargs))
            if self._thread is None:
                self.threads_started += 1
                self._thread = threading.Thread(target=self._work, name=f"{self.name}-{self.threads_started}")
                self._thread.start()
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._thread = None  # a submit from now on starts a new thread
                    return
                future, fn, args, kwargs = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as err:  # noqa: BLE001 - handed to the caller, as ThreadPoolExecutor does
                future.set_exception(err)
            else:
                future.set_result(result)

    @property
    def alive(self) -> bool:
        """Whether a worker thread exists now."""
        with self._lock:
            return self._thread is not None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            if cancel_futures:
                while self._queue:
                    self._queue.popleft()[0].cancel()
            thread = self._thread
        if wait and thread is not None:
            thread.join()
