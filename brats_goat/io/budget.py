"""The memory a case will need, from its headers, before any voxel is read (issue 27, item 7).

A run's resident memory grows by about 20-25 bytes per voxel of one modality (four float32
images, their normalised stack, maps and masks): a 0.4 mm case of 600 x 600 x 388 voxels
peaked at 4.54 GB. Near the 1024^3-voxel cap of a volume (``MAX_VOXELS``) that is tens of
GB, and the kernel's OOM killer then ends the whole run, every other case with it. So a
case whose estimate exceeds the limit fails alone, with the figures, before it is read.

The limit is ``$BRATS_GOAT_MAX_CASE_GB`` (GB, decimal) when set, else the memory the
system has available when the case is read: ``MemAvailable`` of ``/proc/meminfo``, or less
where the process's cgroup (a container's ``--memory``) allows less. Where neither can be
read there is no limit.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import nibabel as nib

from brats_goat.io.errors import CaseError

#: The limit's environment variable, in GB (1e9 bytes).
LIMIT_ENV = "BRATS_GOAT_MAX_CASE_GB"


@dataclass(frozen=True)
class MemoryBudget:
    """How a case's memory is estimated and what it may use."""

    #: Peak resident memory per voxel of the case's largest volume (measured: 20-25).
    bytes_per_voxel: float = 25.0
    #: Environment variable of the limit in GB; unset: the memory available now.
    limit_env: str = LIMIT_ENV

    def limit_bytes(self) -> tuple[float | None, str]:
        """The limit in bytes (None: none known) and where it comes from, for messages."""
        value = os.environ.get(self.limit_env, "").strip()
        if value:
            try:
                gb = float(value)
            except ValueError:
                gb = math.nan
            if not gb > 0 or math.isinf(gb):
                raise CaseError(
                    f"${self.limit_env}={value!r} is not a positive number of GB; set it to "
                    "the memory a case may use (e.g. 16), or unset it"
                )
            return gb * 1e9, f"${self.limit_env}"
        available = available_memory()
        return (available, "the memory available") if available is not None else (None, "")


def _read_int(path: Path) -> int | None:
    """An integer file of /proc or /sys; None where it is absent or says ``max``."""
    try:
        text = path.read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def cgroup_headroom() -> int | None:
    """Bytes the process's cgroup may still use (v2, else v1); None: no limit known."""
    for limit, used in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        cap, now = _read_int(Path(limit)), _read_int(Path(used))
        # v1 writes "no limit" as a huge number (2^63 rounded to pages), v2 as "max".
        if cap is not None and now is not None and cap < 2**60:
            return max(cap - now, 0)
    return None


def available_memory() -> int | None:
    """Bytes the system can give this process now: ``MemAvailable``, or the cgroup's
    headroom where that is less; None where neither is known (not Linux)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    headroom = cgroup_headroom()
    if headroom is not None:
        found.append(headroom)
    return min(found) if found else None


def check_memory(
    case_id: str, files: dict[str, Path], max_voxels: int, budget: MemoryBudget | None = None
) -> None:
    """``CaseError`` when the case's largest volume, from its header, needs more memory
    than the limit. Headers that cannot be read, or that claim more than ``max_voxels``,
    are left to the reader, which names what is wrong with them."""
    budget = budget or MemoryBudget()
    largest, largest_path = 0, None
    shape: tuple[int, ...] = ()
    for path in files.values():
        try:
            image_shape = cast(nib.Nifti1Image, nib.load(str(path))).shape
        except Exception:  # the reader reports the file's own error
            continue
        voxels = math.prod(image_shape)
        if largest < voxels <= max_voxels:
            largest, largest_path, shape = voxels, path, image_shape
    if largest_path is None:
        return
    limit, source = budget.limit_bytes()
    need = largest * budget.bytes_per_voxel
    if limit is not None and need > limit:
        raise CaseError(
            f"case {case_id}: {largest_path} has {largest:,} voxels {tuple(shape)}; the case "
            f"would need about {need / 1e9:.2f} GB ({budget.bytes_per_voxel:g} bytes per "
            f"voxel), more than {source} ({limit / 1e9:.2f} GB). Resample it to a coarser "
            f"grid (1 mm is what the model sees), or raise ${budget.limit_env} (GB) on a "
            "machine with the memory"
        )
