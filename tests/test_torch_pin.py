"""The torch the production image runs is the torch every test runs.

The image installs the Dockerfile's ``TORCH`` (by default the CUDA 12.6 build of that release
from PyTorch's index, ``+cu126``); ``make setup`` installs the Makefile's ``TORCH`` (here the CPU
build of the same release) for the tests, and the container test's base holds it too. One
release in five places, each free to name its own build (``+cu126``, ``+cpu``): if the releases
drift apart, the tests stop covering what organisers run. The container test also checks,
inside the built image, that the report's ``torch_version`` is this release.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    sources = {
        "Makefile": (ROOT / "Makefile", r"^TORCH\s*\?=\s*(\S+)"),
        "pyproject.toml": (ROOT / "pyproject.toml", r'^\s*"(torch==[^"]+)"'),
        "Dockerfile": (ROOT / "Dockerfile", r'^ARG TORCH="?([^"\s]+)"?'),
        "docker/local-base.sh": (ROOT / "docker/local-base.sh", r'TORCH="\$\{TORCH:-([^}]+)\}"'),
        "scripts/container_test.py": (ROOT / "scripts/container_test.py", r'^TORCH_PIN = "(.+)"'),
    }
    found = {}
    for name, (path, pattern) in sources.items():
        match = re.search(pattern, path.read_text(), re.MULTILINE)
        assert match, f"no torch pin found in {name}"
        found[name] = match.group(1)
    return found


def release(pin: str) -> str:
    """``torch==2.13.0+cu126`` -> ``2.13.0``: the build (local label) may differ between the
    places, the release may not."""
    assert pin.startswith("torch=="), f"not an exact torch pin: {pin}"
    return pin.removeprefix("torch==").split("+")[0]


def test_one_torch_release_everywhere() -> None:
    found = pins()
    assert len({release(pin) for pin in found.values()}) == 1, f"torch releases differ: {found}"


def test_release_ignores_the_build_only() -> None:
    assert release("torch==2.13.0+cu126") == release("torch==2.13.0") == "2.13.0"
    assert release("torch==2.13.1+cu126") != release("torch==2.13.0")


def test_tests_run_the_pinned_release() -> None:
    pinned = release(pins()["Dockerfile"])
    assert torch.__version__.split("+")[0] == pinned, (
        f"the tests run torch {torch.__version__}, but the image pins {pinned}: "
        "they no longer cover what the container runs (make setup installs the pin)"
    )
