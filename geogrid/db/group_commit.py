"""Group commit: single writes that arrive together are committed together, each still acknowledged only
once it is durable.

A disk syncs a commit in about a millisecond and a half, so one transaction per request caps a service at
a few hundred writes a second however fast the rest is. :class:`GroupCommit` has one writer thread take
every write waiting when it is free and hand them to ``write`` as one batch (one transaction, one sync);
each caller's future answers with its own result or its own error once that transaction has committed or
failed. Under light load a batch is one write and nothing waits for company.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
MAX_BATCH = 256  # writes a transaction takes at most: a bounded batch keeps the first caller's wait bounded


class GroupCommit(Generic[T, R]):
    """A writer thread calling ``write(items)`` on every batch of waiting items; one result (or exception) per
    item, in order."""

    def __init__(
        self,
        write: Callable[[Sequence[T]], Sequence[R | BaseException]],
        name: str,
        finish: Callable[[], None] | None = None,
    ) -> None:
        self._write = write
        self._finish = finish  # called on the writer thread as it stops (to close what it opened)
        self._name = name
        self._queue: queue.SimpleQueue[tuple[T, Future[R]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, item: T) -> Future[R]:
        """Queue ``item`` for the next batch; its future answers once that batch is committed (or failed)."""
        future: Future[R] = Future()
        with self._lock:  # one writer at a time, each with its own queue: close() never strands an item
            if self._thread is None or not self._thread.is_alive():
                left, self._queue = self._queue, queue.SimpleQueue()
                while not left.empty():  # what a writer that died left behind (None: a stop it never read)
                    if (waiting := left.get_nowait()) is not None:
                        self._queue.put(waiting)
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name=self._name, daemon=True
                )
                self._thread.start()
            self._queue.put((item, future))
        return future

    def close(self) -> None:
        """Write what is queued, then stop the writer thread (a later submit starts a new one)."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
                self._queue = queue.SimpleQueue()
        if thread is not None:
            thread.join()

    def _run(self, jobs: queue.SimpleQueue[tuple[T, Future[R]] | None]) -> None:
        try:
            self._serve(jobs)
        finally:
            if self._finish is not None:
                self._finish()

    def _serve(self, jobs: queue.SimpleQueue[tuple[T, Future[R]] | None]) -> None:
        stop = False
        while not stop:
            first = jobs.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    more = jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            live = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                results = self._write([item for item, _ in live])
            except BaseException as error:  # the whole batch failed: every caller hears why
                for _, future in live:
                    future.set_exception(error)
                continue
            for (_, future), result in zip(live, results, strict=True):
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
