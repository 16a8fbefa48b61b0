"""Returning memory to the operating system (glibc only; a no-op elsewhere).

glibc gives each thread that allocates its own malloc arena and returns freed memory to the OS
only from the top of the heap: on main, six concurrent 64 MB requests raised the resident size by
1.1 GB that was never returned. Two arenas and a fixed mmap threshold (`limit_arenas`, at
start-up) and a `trim` shortly after large requests and engine calls keep the resident size close
to what is live (tests/test_hardening.py measures it)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc

M_ARENA_MAX = -8
M_MMAP_THRESHOLD = -3
# Allocations this large get their own mapping, returned to the OS when freed. Setting it also
# turns off glibc's dynamic threshold, which otherwise climbs to 32 MiB after the first large free
# and leaves big request buffers fragmenting the heap.
MMAP_THRESHOLD = 1024 * 1024
TRIM_AFTER_BYTES = 16 * 1024 * 1024  # requests this large are followed by a trim
TRIM_DELAY_S = 0.5  # after the call's buffers (gRPC's, protobuf's) are really freed


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name or not name.startswith("libc.so"):
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 - glibc only (musl has no malloc_trim)
        return libc
    except (OSError, AttributeError):
        return None


def limit_arenas(arenas: int = 2) -> None:
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, arenas)
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def collect_and_trim() -> None:
    """After a large request: free what only reference cycles still hold (an aborted call's
    exception, traceback and frames keep the request alive until the cyclic collector runs,
    which counts objects, not bytes), then give the free pages back."""
    gc.collect()
    trim()


def trim() -> None:
    """Give free heap pages back to the OS (milliseconds; call off the event loop when possible)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
