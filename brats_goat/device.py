"""Which torch device runs the model, and in which arithmetic: shared by inference, training
and calibration.

The labels must not depend on the machine (issue 25). oneDNN picks its CPU code path (its
"ISA") from what the CPU offers, capped by ``ONEDNN_MAX_CPU_ISA``, and bfloat16's labels
depend on it: against float32, the AMX path moved a real case's whole tumour to WT Dice
0.489, and even the AVX512-BF16 path fell below the 0.999 rule on three BraTS 2018 cases
(WT 0.9982, TC 0.9978; results/precision-agreement-*.md). So ``auto`` is float32 on every
path and device; bfloat16 runs only when asked for, and the report names the path.
"""

from __future__ import annotations

import functools
import os
from contextlib import AbstractContextManager

import torch

#: Arithmetic choices of a forward pass (``InferenceConfig.precision``, ``--precision``).
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")

#: oneDNN's CPU code paths as ``ONEDNN_MAX_CPU_ISA`` names them: each with the paths it
#: extends and the CPU flags (torch's ``_get_cpu_capability``) it adds, in oneDNN's order
#: (a path comes after every path it extends). A path runs where the CPU has all its flags
#: and the cap allows it; the cap allows the paths whose flags are a subset of its own.
ONEDNN_ISAS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "SSE41": ((), ("sse4_1",)),
    "AVX": (("SSE41",), ("avx",)),
    "AVX2": (("AVX",), ("avx2",)),
    "AVX2_VNNI": (("AVX2",), ("avx_vnni",)),
    "AVX2_VNNI_2": (("AVX2_VNNI",), ("avx_vnni_int8", "avx_ne_convert")),
    "AVX512_CORE": (("AVX2",), ("avx512_f", "avx512_bw", "avx512_vl", "avx512_dq")),
    "AVX512_CORE_VNNI": (("AVX512_CORE",), ("avx512_vnni",)),
    "AVX512_CORE_BF16": (("AVX512_CORE_VNNI",), ("avx512_bf16",)),
    "AVX10_1_512": (("AVX512_CORE_BF16", "AVX2_VNNI_2"), ("avx512_fp16",)),
    "AVX10_1_512_AMX": (("AVX10_1_512",), ("amx_tile", "amx_int8", "amx_bf16")),
    "AVX10_1_512_AMX_FP16": (("AVX10_1_512_AMX",), ("amx_fp16",)),
    "AVX10_2_512": (("AVX10_1_512",), ("avx10_2",)),
}
#: Older ``ONEDNN_MAX_CPU_ISA`` spellings of the paths above.
ISA_ALIASES: dict[str, str] = {
    "AVX512_CORE_FP16": "AVX10_1_512",
    "AVX512_CORE_AMX": "AVX10_1_512_AMX",
    "AVX512_CORE_AMX_FP16": "AVX10_1_512_AMX_FP16",
}


def pick_device(requested: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; asking for CUDA without one is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but no CUDA GPU is available")
    return torch.device(requested)


@functools.cache
def isa_flags(name: str) -> frozenset[str]:
    """Every CPU flag that oneDNN's path ``name`` needs, its parents' included."""
    parents, own = ONEDNN_ISAS[name]
    return frozenset(own).union(*(isa_flags(p) for p in parents))


def isa_cap(value: str | None) -> str | None:
    """The path an ``ONEDNN_MAX_CPU_ISA`` value caps oneDNN at (None: no cap)."""
    if not value or value.upper() in ("ALL", "DEFAULT"):
        return None
    name = ISA_ALIASES.get(value.upper(), value.upper())
    if name not in ONEDNN_ISAS:
        known = ", ".join(ONEDNN_ISAS)
        raise ValueError(f"ONEDNN_MAX_CPU_ISA={value!r} is not a oneDNN CPU path ({known})")
    return name


def cpu_isa(flags: dict[str, object] | None = None, cap: str | None = None) -> str:
    """The oneDNN CPU path this process runs on: the last of ``ONEDNN_ISAS`` that the CPU
    has and the cap allows. ``flags`` default to this CPU's, ``cap`` to
    ``ONEDNN_MAX_CPU_ISA`` (or its old name ``DNNL_MAX_CPU_ISA``), both read by oneDNN
    once. Checked against oneDNN's own verbose report in tests/test_device.py."""
    if flags is None:
        flags = torch._C._cpu._get_cpu_capability()
    if cap is None:
        cap = isa_cap(os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA"))
    allowed = isa_flags(cap) if cap else None
    found = "DEFAULT"
    for name in ONEDNN_ISAS:
        needs = isa_flags(name)
        if all(flags.get(f) for f in needs) and (allowed is None or needs <= allowed):
            found = name
    return found


def check_precision(precision: str) -> None:
    """``ValueError`` unless ``precision`` is one of ``PRECISIONS``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a forward pass under ``precision`` (one of ``PRECISIONS``), or
    None for float32. ``auto`` is float32 on every device, the reference: bfloat16 moved the
    labels beyond the 0.999 rule on every CPU path measured (module docstring), and no GPU
    agreement is on record yet (scripts/gpu_check.py measures it)."""
    check_precision(precision)
    return torch.bfloat16 if precision == "bfloat16" else None


def compute_path(device: torch.device) -> str | None:
    """The CPU path for the run report (None on a GPU, where oneDNN does not run the network)."""
    return cpu_isa() if device.type == "cpu" else None


def autocast(dtype: torch.dtype | None, device: torch.device) -> AbstractContextManager:
    """The arithmetic context for ``dtype`` on ``device`` (``autocast_dtype``'s answer).
    None: float32, and on a GPU true float32, as on the CPU: cuDNN would otherwise run the
    convolutions in TF32 (10-bit mantissa) on Ampere and newer."""
    if dtype is None and device.type == "cuda":
        cudnn = torch.backends.cudnn
        return cudnn.flags(
            enabled=cudnn.enabled,
            benchmark=cudnn.benchmark,
            deterministic=cudnn.deterministic,
            allow_tf32=False,
        )
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)
