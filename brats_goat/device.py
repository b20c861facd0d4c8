"""Which torch device runs the model: shared by inference, training and calibration."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

#: Arithmetic choices of a forward pass (``InferenceConfig.precision``, ``--precision``).
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")


def pick_device(requested: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; asking for CUDA without one is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but no CUDA GPU is available")
    return torch.device(requested)


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively; without it bfloat16 is emulated and
    slower than float32. Linux reports it in /proc/cpuinfo; elsewhere: assume not."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def check_precision(precision: str) -> None:
    """``ValueError`` unless ``precision`` is one of ``PRECISIONS``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a forward pass under ``precision`` (one of ``PRECISIONS``) on
    ``device``, or None for float32: ``auto`` is bfloat16 on a GPU and on a CPU with native
    bfloat16, where it is twice as fast (issue 18), float32 elsewhere."""
    check_precision(precision)
    if precision == "float32":
        return None
    if precision == "bfloat16" or device.type == "cuda" or native_bf16():
        return torch.bfloat16
    return None


def autocast(dtype: torch.dtype | None, device: torch.device) -> torch.autocast:
    """The autocast context for ``dtype`` on ``device`` (``autocast_dtype``'s answer); None:
    off, the forward pass runs in float32."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)
