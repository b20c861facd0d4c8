"""Huge pages for large tensors and freed heap memory handed back (``brats_goat.memory``):
what the command line opts into, and importing the package does not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from brats_goat.memory import THP_ENV, release_free_memory

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")

FAULTS = """
import resource
import brats_goat.cli, torch  # the command line's process settings
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.ones(4, 240, 240, 155)  # one 143 MB volume, as the pipeline holds
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(env_value: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != THP_ENV}
    if env_value is not None:
        env[THP_ENV] = env_value
    out = subprocess.run([sys.executable, "-c", FAULTS], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(
    not THP.exists() or "[never]" in THP.read_text(), reason="the kernel gives no huge pages"
)
def test_the_command_line_puts_large_tensors_on_huge_pages_unless_the_user_says_no() -> None:
    """A 143 MB tensor takes ~35k page faults on 4 KB pages and a few hundred on 2 MB ones;
    the user's own ``THP_MEM_ALLOC_ENABLE=0`` wins."""
    default, refused = _faults(None), _faults("0")
    assert refused > 30_000
    assert default < refused / 10


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_freed_heap_memory_is_handed_back() -> None:
    """Blocks freed below one still in use stay in glibc's heap (resident) until
    ``release_free_memory``; then they stop counting."""
    blocks = [bytearray(64 * 1024) for _ in range(3000)]  # ~190 MB below the mmap threshold
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])  # touch every page
    keep = bytearray(64 * 1024)  # in use above them: the heap's top cannot shrink
    held = _rss_mb()
    del blocks
    if not release_free_memory():
        pytest.skip("this C library has no malloc_trim")
    assert _rss_mb() < held - 100
    del keep


HEAPS = """
import ctypes, sys, threading
import brats_goat.cli  # the command line opts into one heap

def work():
    blocks = [ctypes.create_string_buffer(64 * 1024) for _ in range(64)]
    del blocks

threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
sys.stderr.flush()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per heap, on stderr
"""


def _heaps(arena_max: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    if arena_max is not None:
        env["MALLOC_ARENA_MAX"] = arena_max
    out = subprocess.run([sys.executable, "-c", HEAPS], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stderr.count("Arena ")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_stats")
def test_the_command_line_gives_every_thread_one_heap_unless_the_user_says_otherwise() -> None:
    """Threads that allocate get heaps of their own from glibc, which kept hundreds of MB
    of freed memory at the run's peak; after ``import brats_goat`` all share one, and the
    user's own ``MALLOC_ARENA_MAX`` wins."""
    assert _heaps(None) == 1
    assert _heaps("8") > 1


SIDE_EFFECTS = """
import os, sys
before = dict(os.environ)
import brats_goat
from brats_goat import make_segmenter, predict, load_case  # the user API, imported
import brats_goat.segmenter, brats_goat.run.predict
assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
import brats_goat.cli
print(os.environ.get("THP_MEM_ALLOC_ENABLE"))
"""


def test_importing_the_package_changes_nothing_process_wide_and_the_cli_opts_in() -> None:
    env = {k: v for k, v in os.environ.items() if k != THP_ENV}
    out = subprocess.run(
        [sys.executable, "-c", SIDE_EFFECTS], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "1"


def test_importing_the_package_root_loads_no_torch() -> None:
    """The command line must set its process options before torch is imported."""
    code = "import sys, brats_goat, brats_goat.cli; assert 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
