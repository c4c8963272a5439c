"""Hand freed heap memory back to the system (glibc), so resident memory follows live data, not peaks.

glibc keeps what a request freed in per-thread arenas (up to 8 per core) and trims only the top of each
heap; after a large batch or a refused upload the process stays hundreds of MB larger. Fewer arenas and an
explicit ``malloc_trim(0)`` after large requests bound that. Elsewhere (musl, macOS) both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

M_ARENA_MAX = -8  # glibc's mallopt parameter number
_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _libc.malloc_trim  # noqa: B018 - glibc only
except (OSError, AttributeError):
    _libc = None
_trimming = threading.Lock()
_last_trim = -float("inf")


def limit_arenas(count: int = 2) -> bool:
    """Cap glibc's malloc arenas at ``count`` (call before threads start); False where not glibc."""
    return _libc is not None and bool(_libc.mallopt(M_ARENA_MAX, count))


def trim() -> bool:
    """Return freed heap pages to the system; True if glibc released any (one trim at a time)."""
    if _libc is None or not _trimming.acquire(blocking=False):
        return False
    try:
        return bool(_libc.malloc_trim(0))
    finally:
        _trimming.release()


def trim_soon(min_interval_s: float = 2.0) -> bool:
    """Trim in a thread of its own (not on the event loop), unless one began within ``min_interval_s``.

    For after a large request: a trim walks the whole heap (milliseconds for hundreds of MB), so several
    large requests in a row share one. True if a trim was started.
    """
    global _last_trim
    now = time.monotonic()
    if _libc is None or now - _last_trim < min_interval_s:
        return False
    _last_trim = now
    threading.Thread(target=trim, name="geogrid-trim", daemon=True).start()
    return True


def rss_bytes() -> int:
    """This process's resident set size in bytes (Linux), 0 where /proc is not there."""
    try:
        with open("/proc/self/statm") as statm:
            import os

            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
