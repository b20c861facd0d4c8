"""Print the pinned requirements of one optional extra of pyproject.toml, space separated.

`make setup` installs the `sam` extra with `pip install --no-deps $(...)`: its transitive
dependencies (timm -> torchvision) would replace the CPU torch by a CUDA build, and the code
we run from these packages needs nothing beyond torch and numpy (README: "Refinement").
Keeping the pins in pyproject.toml alone means the Makefile cannot drift from them.

    python scripts/extra_pins.py sam
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the copy pip itself vendors
    from pip._vendor import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def extra_requirements(name: str, pyproject: Path = PYPROJECT) -> list[str]:
    data = tomllib.loads(pyproject.read_text())
    return list(data["project"]["optional-dependencies"][name])


if __name__ == "__main__":
    print(" ".join(extra_requirements(sys.argv[1])))
