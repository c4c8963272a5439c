"""Freed heap memory goes back to the system after a large request (issue 10, item 13)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from api import memory
from api.middleware import Metrics, Operations


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


def _serve(operations: Operations, body: bytes, chunk: int = 250_000) -> int:
    """Send one POST with ``body`` through ``operations``; the status it answered."""
    messages = [
        {"type": "http.request", "body": body[i : i + chunk], "more_body": i + chunk < len(body)}
        for i in range(0, len(body), chunk)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/lookup", "headers": []}
    asyncio.run(operations(scope, receive, send))
    return int(sent[0]["status"])


async def _read_all(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def test_a_request_with_a_large_body_is_followed_by_a_trim(monkeypatch):
    trims: list[bool] = []
    monkeypatch.setattr(memory, "trim_soon", lambda: trims.append(True) or True)
    operations = Operations(_read_all, max_body_bytes=3_000_000, metrics=Metrics())
    assert _serve(operations, b"x" * 1000) == 200
    assert trims == []  # a lookup's or a small write's body: no trim
    assert _serve(operations, b"x" * 2_000_000) == 200
    assert trims == [True]
    assert _serve(operations, b"x" * 4_000_000) == 413  # refused after reading 3 MB: trimmed too
    assert trims == [True, True]


def test_trims_soon_at_most_once_in_the_interval():
    assert memory.trim_soon(min_interval_s=0.0)  # in a thread of its own
    assert not memory.trim_soon(min_interval_s=3600)
