"""The torch the production image runs is the torch every test runs.

The image installs the Dockerfile's ``TORCH`` (from PyPI: the CUDA build of that release);
``make setup`` installs the Makefile's ``TORCH`` (the CPU build of the same release) for the
tests, and the container test's base holds it too. One release in four places: if they drift
apart, the tests stop covering what organisers run. The container test also checks, inside
the built image, that the report's ``torch_version`` is this release.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    sources = {
        "Makefile": (ROOT / "Makefile", r"^TORCH\s*\?=\s*(\S+)"),
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


def test_one_torch_pin_everywhere() -> None:
    found = pins()
    assert len(set(found.values())) == 1, f"torch pins differ: {found}"
    assert next(iter(found.values())).startswith("torch==")


def test_tests_run_the_pinned_release() -> None:
    release = next(iter(pins().values())).removeprefix("torch==")
    assert torch.__version__.split("+")[0] == release, (
        f"the tests run torch {torch.__version__}, but the image pins {release}: "
        "they no longer cover what the container runs (make setup installs the pin)"
    )
