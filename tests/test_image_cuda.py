"""The CUDA build of torch that the default image installs runs on the drivers and GPUs the
docs promise: NVIDIA driver 550 and older branches back to 525, and V100s (compute capability
7.0). Checked without a GPU, from the Dockerfile's default build arguments, the one place that
decides what `docker build .` installs: ``TORCH`` (its local label, ``+cu126``) and
``TORCH_INDEX_URL`` (``.../whl/cu126``).

``VARIANTS`` is the table behind the check, one row per PyTorch CUDA variant of the torch
releases in ``TABLE_RELEASES`` (docs/container.md shows it too). Its sources:

- minimum Linux driver: NVIDIA's CUDA Compatibility guide, "Minor Version Compatibility"
  (docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html): a CUDA 12.x
  application runs on any driver >= 525 (the CUDA release notes' table: 525.60.13), a 13.x one
  on >= 580 (13.0 GA: 580.65.06). PyTorch's wheels bring their own CUDA runtime libraries, so
  that minimum is the host's only requirement. Minor-version compatibility cannot JIT-compile
  PTX on an older driver; the architectures below ship as compiled code (SASS), which needs no
  JIT.
- architectures: PyTorch's RELEASE.md, "PyTorch CUDA Support Matrix", for releases 2.12 and
  2.13 (pytorch/pytorch#182849, #187075): 12.6.3 and 13.0.2/13.2.1 as below; cu128 as it was in
  2.11 (pytorch/pytorch#175253: Volta dropped from it, #172352), not built for 2.12 or 2.13.
- the PyPI build: since 2.11 PyPI's Linux torch is the CUDA 13.0 build
  (pytorch/pytorch#177975); 2.14 moves it to 13.2 (pytorch/pytorch#190385).

Not verified here (no route to download.pytorch.org): that ``torch==2.13.0+cu126`` resolves
from that index and imports, and that it runs on a V100 or on a 525-550 driver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
#: The oldest driver branch and GPU the default image must run on (issue 25).
MAX_MIN_DRIVER = 550
REQUIRED_ARCH = "7.0"


@dataclass(frozen=True)
class CudaVariant:
    """One PyTorch CUDA build: its CUDA release, the oldest Linux driver it runs on (through
    minor-version compatibility) and the compute capabilities compiled into it."""

    cuda: str
    min_driver: str
    archs: tuple[str, ...]


#: The torch releases (major.minor) the rows below were read for.
TABLE_RELEASES = ("2.12", "2.13")
VARIANTS: dict[str, CudaVariant] = {
    "cu126": CudaVariant("12.6", "525.60.13", ("5.0", "6.0", "7.0", "7.5", "8.0", "8.6", "9.0")),
    "cu128": CudaVariant("12.8", "525.60.13", ("7.5", "8.0", "8.6", "9.0", "10.0", "12.0")),
    "cu130": CudaVariant("13.0", "580.65.06", ("7.5", "8.0", "8.6", "9.0", "10.0", "12.0")),
    "cu132": CudaVariant("13.2", "580.65.06", ("7.5", "8.0", "8.6", "9.0", "10.0", "12.0")),
}
#: What a plain ``torch==X`` from PyPI is on Linux for the releases above.
PYPI_VARIANT = "cu130"


def build_arg(name: str, dockerfile: str) -> str:
    """The default value of ``ARG name`` in a Dockerfile's text ("" for an empty default)."""
    match = re.search(rf'^ARG {name}="?([^"\s]*)"?\s*$', dockerfile, re.MULTILINE)
    assert match, f"no ARG {name} with a default in the Dockerfile"
    return match.group(1)


def default_variant(dockerfile: str) -> tuple[str, str]:
    """(torch release, CUDA variant) that the Dockerfile installs with its default arguments.

    The variant is TORCH's local label and the last part of TORCH_INDEX_URL, which must agree
    when both are given; neither means PyPI's build."""
    torch_pin = build_arg("TORCH", dockerfile)
    index_url = build_arg("TORCH_INDEX_URL", dockerfile)
    match = re.fullmatch(r"torch==(\d+\.\d+\.\d+)(?:\+(\w+))?", torch_pin)
    assert match, f"ARG TORCH is not an exact torch pin: {torch_pin!r}"
    release, label = match.groups()
    from_index = index_url.rstrip("/").rsplit("/", 1)[-1] if index_url else None
    if label and from_index and label != from_index:
        raise ValueError(f"TORCH asks for +{label} but TORCH_INDEX_URL is {index_url}")
    return release, label or from_index or PYPI_VARIANT


def problems(release: str, variant: str) -> list[str]:
    """Why this build would not serve the drivers and GPUs the docs promise (empty: it does)."""
    if release.rsplit(".", 1)[0] not in TABLE_RELEASES:
        return [f"the CUDA table is for torch {TABLE_RELEASES}, not {release}: re-read its sources"]
    if variant not in VARIANTS:
        return [f"{variant} is not in the CUDA table: add it with its source"]
    row = VARIANTS[variant]
    found = []
    if int(row.min_driver.split(".")[0]) > MAX_MIN_DRIVER:
        found.append(
            f"{variant} (CUDA {row.cuda}) needs NVIDIA driver >= {row.min_driver}, "
            f"newer than {MAX_MIN_DRIVER}"
        )
    if REQUIRED_ARCH not in row.archs:
        found.append(
            f"{variant} (CUDA {row.cuda}) has no compute capability {REQUIRED_ARCH} (V100): "
            f"{', '.join(row.archs)}"
        )
    return found


def test_default_image_runs_on_older_drivers_and_volta() -> None:
    release, variant = default_variant(DOCKERFILE.read_text())
    assert not problems(release, variant), problems(release, variant)


def dockerfile(torch: str, index_url: str) -> str:
    return f'ARG TORCH="{torch}"\nARG TORCH_INDEX_URL="{index_url}"\n'


@pytest.mark.parametrize(
    ("torch", "index_url", "reason"),
    [
        ("torch==2.13.0", "", "needs NVIDIA driver >= 580.65.06"),  # PyPI's CUDA 13.0 build
        ("torch==2.13.0+cu130", "https://download.pytorch.org/whl/cu130", "newer than 550"),
        ("torch==2.13.0+cu128", "https://download.pytorch.org/whl/cu128", "no compute capab"),
        ("torch==2.13.0+cu118", "https://download.pytorch.org/whl/cu118", "not in the CUDA"),
        ("torch==2.15.0+cu126", "https://download.pytorch.org/whl/cu126", "re-read its sources"),
    ],
)
def test_check_rejects_builds_that_need_new_drivers_or_drop_volta(
    torch: str, index_url: str, reason: str
) -> None:
    found = problems(*default_variant(dockerfile(torch, index_url)))
    assert found and reason in found[0], found


def test_variant_from_the_index_alone_and_disagreement() -> None:
    text = dockerfile("torch==2.13.0", "https://download.pytorch.org/whl/cu126/")
    assert default_variant(text) == ("2.13.0", "cu126")
    assert not problems(*default_variant(text))
    with pytest.raises(ValueError, match="TORCH_INDEX_URL"):
        default_variant(dockerfile("torch==2.13.0+cu126", "https://download.pytorch.org/whl/cu130"))


def test_docs_state_the_default_images_driver_and_gpus() -> None:
    """README and docs/container.md name the minimum driver of what the image installs."""
    release, variant = default_variant(DOCKERFILE.read_text())
    row = VARIANTS[variant]
    for doc in ("README.md", "docs/container.md"):
        text = (ROOT / doc).read_text()
        for phrase in (f"driver >= {row.min_driver}", f"torch {release}+{variant}"):
            assert phrase in text, f"{doc} does not say {phrase!r}"
