"""pyproject pins the releases the tests run: each pinned package installed here is that release.

``make setup`` installs from these pins, so a drift means the tests no longer cover what an
install gets (or the pins were bumped without running the tests on the new releases).
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: The extras `make setup` installs with their dependencies (sam goes in with --no-deps,
#: and tests/stages/test_sam_backends.py checks its pins).
SETUP_EXTRAS = ("dev", "plots", "phantoms", "openvino")


def exact_pin(requirement: str) -> tuple[str, str]:
    """``"numpy==2.4.6"`` -> ``("numpy", "2.4.6")``; anything but an exact pin fails."""
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;,]+)", requirement)
    assert match, f"not an exact pin: {requirement}"
    return match.group(1), match.group(2)


def test_exact_pin_parses_and_refuses_ranges() -> None:
    assert exact_pin("SimpleITK==2.5.7") == ("SimpleITK", "2.5.7")
    with pytest.raises(AssertionError):
        exact_pin("torch>=2.1")


@pytest.mark.parametrize("requirement", PROJECT["dependencies"])
def test_core_dependency_is_the_installed_release(requirement: str) -> None:
    name, version = exact_pin(requirement)
    installed = metadata.version(name).split("+")[0]  # torch 2.13.0+cpu is release 2.13.0
    assert installed == version, f"{name}: pyproject pins {version}, the tests run {installed}"


@pytest.mark.parametrize(
    "requirement",
    [req for extra in SETUP_EXTRAS for req in PROJECT["optional-dependencies"][extra]],
)
def test_extra_is_pinned_and_installed_at_its_pin(requirement: str) -> None:
    name, version = exact_pin(requirement)
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{name} is not installed here (make setup installs it)")
    assert installed == version, f"{name}: pyproject pins {version}, the tests run {installed}"


def test_nilearn_is_an_extra_not_a_core_dependency() -> None:
    core = {exact_pin(req)[0].lower() for req in PROJECT["dependencies"]}
    assert "nilearn" not in core
    assert any(r.startswith("nilearn==") for r in PROJECT["optional-dependencies"]["phantoms"])
