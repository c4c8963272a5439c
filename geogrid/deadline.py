"""The deadline of the request being served: checkpoints in long work, and one decision between a timeout
and a commit.

A request's :class:`Deadline` lives in a context variable: the API sets it around each request, and the
threads the request's synchronous work runs in inherit it (``asyncio`` tasks and ``anyio``'s worker
threads copy the context). Whoever gets there first decides the outcome, under one lock:

- the server, when the time is up, calls :meth:`Deadline.expire`; unless a commit has begun, the request
  is over: the client is told 503, :func:`check` raises at the work's next checkpoint, and a commit is
  refused (the database engine asks :func:`begin_commit` before every commit that writes);
- a commit that writes, while time is left, marks the deadline *committing*: from then on it can no
  longer expire, and the client gets the write's real answer however long it takes.

Without a deadline (the CLI, notebooks, background threads) every call here does nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from geogrid.errors import RequestTimeout

RUNNING, COMMITTING, EXPIRED = "running", "committing", "expired"
_current: ContextVar[Deadline | None] = ContextVar("geogrid_deadline", default=None)


class Deadline:
    """A request's time limit, and whether it expired or a commit began first."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.until = time.monotonic() + timeout_s
        self.state = RUNNING
        self._lock = threading.Lock()

    def remaining(self) -> float:
        """Seconds left (negative once past)."""
        return self.until - time.monotonic()

    @property
    def expired(self) -> bool:
        """Whether the request is over: the client is, or will be, told it timed out."""
        return self.state == EXPIRED

    def expire(self) -> bool:
        """End the request for timing out; False (and nothing changes) if a commit has begun."""
        with self._lock:
            if self.state == COMMITTING:
                return False
            self.state = EXPIRED
            return True

    def check(self) -> None:
        """Raise RequestTimeout if the request is over (or due): work whose client was told 503 stops."""
        if self.state == COMMITTING or (self.state == RUNNING and time.monotonic() < self.until):
            return
        if self.expire():
            raise self.error()

    def begin_commit(self) -> None:
        """Before a commit that writes: refuse it (RequestTimeout) if the request is over, else hold the
        deadline off until the request ends."""
        with self._lock:
            if self.state == RUNNING and time.monotonic() >= self.until:
                self.state = EXPIRED
            if self.state == EXPIRED:
                raise self.error()
            self.state = COMMITTING

    def error(self) -> RequestTimeout:
        """The error a timed-out request answers with."""
        return RequestTimeout(f"the request took over {self.timeout_s:g} s (GEOGRID_REQUEST_TIMEOUT_S)")


def current() -> Deadline | None:
    """The deadline of the request being served here, if any."""
    return _current.get()


@contextmanager
def running(timeout_s: float) -> Iterator[Deadline]:
    """Set a deadline of ``timeout_s`` for what runs inside (and the tasks and threads it starts)."""
    deadline = Deadline(timeout_s)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def check() -> None:
    """A checkpoint in long work: raise RequestTimeout once the current request is over."""
    deadline = _current.get()
    if deadline is not None:
        deadline.check()


def begin_commit() -> None:
    """Before a commit that writes: RequestTimeout if the current request is over (the commit is refused)."""
    deadline = _current.get()
    if deadline is not None:
        deadline.begin_commit()
