"""Memory the process asks the system for: large torch tensors on huge pages, and freed
heap memory handed back between cases.

On the 2-core VM a 4 KB page fault costs several microseconds, and the forward pass
allocates hundreds of MB of fresh activation buffers per batch: 860k faults for four real
cases (results/predict-speed-*.md). torch's own switch ``THP_MEM_ALLOC_ENABLE`` backs
tensors of 2 MB or more with transparent huge pages (512 times fewer faults) where the
kernel allows them (``/sys/kernel/mm/transparent_hugepage/enabled``: always or madvise).
Freed memory that glibc keeps in its heaps (the ONNX export of a SAM encoder leaves
~0.2 GB) counts towards the peak of every later case unless it is handed back.

glibc also gives each thread that allocates its own heap ("arena"), and memory freed in
one serves only that one. The run's helper threads (reading, normalising, the channel
pairs, OpenVINO's) each kept hundreds of MB that way: with LiteMedSAM the peak over the
4 real cases was 1.83-2.14 GB with one heap per thread and 1.66 GB with one heap for all,
in the same time (issue 18). One heap is the default here (``MALLOC_ARENA_MAX`` set by the
user wins).

Both change the whole process, so importing the package does neither: the ``brats-goat``
command (and so the container) opts in through ``tune_process``, before torch is imported.
A notebook user who wants the same calls it first thing.
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
    (to 0 to turn them off). Must run before torch is imported to take effect."""
    os.environ.setdefault(THP_ENV, "1")


@functools.cache
def _glibc(name: str) -> Callable[..., int] | None:
    """glibc's function ``name``, or None where the C library has none (musl, macOS,
    Windows)."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


#: glibc's ``mallopt`` parameter for the number of heaps (malloc.h: ``M_ARENA_MAX``).
M_ARENA_MAX = -8
ARENA_ENV = "MALLOC_ARENA_MAX"


def one_heap() -> bool:
    """One glibc heap for every thread, unless the user set ``MALLOC_ARENA_MAX`` (glibc
    reads it itself). Must run before any helper thread exists. False where the C library
    has no ``mallopt`` (nothing is done)."""
    mallopt = _glibc("mallopt")
    if ARENA_ENV in os.environ or mallopt is None:
        return False
    return bool(mallopt(M_ARENA_MAX, 1))


def tune_process() -> None:
    """What the command line opts into for the whole process, before torch is imported:
    huge-page tensors and one glibc heap (see the module's docstring)."""
    prefer_huge_pages()
    one_heap()


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``): what was
    freed stops counting towards the process's resident memory. False where the C library
    has no such call (nothing is done)."""
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True
