"""Memory the process asks the system for: large torch tensors on huge pages, and freed
heap memory handed back between cases.

On the 2-core VM a 4 KB page fault costs several microseconds, and the forward pass
allocates hundreds of MB of fresh activation buffers per batch: 860k faults for four real
cases (results/predict-speed-*.md). torch's own switch ``THP_MEM_ALLOC_ENABLE`` backs
tensors of 2 MB or more with transparent huge pages (512 times fewer faults) where the
kernel allows them (``/sys/kernel/mm/transparent_hugepage/enabled``: always or madvise).
Freed memory that glibc keeps in its heaps (the ONNX export of a SAM encoder leaves
~0.2 GB) counts towards the peak of every later case unless it is handed back.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable

#: torch's switch for huge-page tensors; it is read once, at torch's first allocation.
THP_ENV = "THP_MEM_ALLOC_ENABLE"


def prefer_huge_pages() -> None:
    """Turn torch's huge-page tensors on unless the user set ``THP_MEM_ALLOC_ENABLE``
    (to 0 to turn them off). Must run before torch is imported to take effect: it runs
    when this module is imported, which ``brats_goat/__init__.py`` does first."""
    os.environ.setdefault(THP_ENV, "1")


prefer_huge_pages()


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; absent on musl, macOS, Windows
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``): what was
    freed stops counting towards the process's resident memory. False where the C library
    has no such call (nothing is done)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
