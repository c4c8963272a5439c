"""Freed heap memory goes back to the system after a large request (issue 10, item 13)."""

from __future__ import annotations

import threading

from api import memory


def _churn() -> None:
    """Many small allocations freed again, as a parsed JSON batch is (they do not reach the top of the heap)."""
    # ~100 MB in 1 kB blocks: above pymalloc's 512 B, below malloc's mmap threshold, so from an arena
    keep = [bytearray(1000) for _ in range(100_000)]
    anchor = bytearray(1000)  # allocated last: holds the heap's top so glibc's own trim cannot shrink it
    del keep
    _churn.anchors.append(anchor)


_churn.anchors = []


def test_trim_returns_freed_small_blocks_to_the_system():
    thread = threading.Thread(target=_churn)  # in a thread, as the threadpool's requests are
    thread.start()
    thread.join()
    before = memory.rss_bytes()
    assert memory.trim()
    after = memory.rss_bytes()
    assert before - after > 30e6, (before, after)


def test_limit_arenas_is_accepted_by_glibc():
    assert memory.limit_arenas(2)
