"""The experiments still import, and those with a command line still parse ``--help``.

They are not part of the product and no test runs them whole (they need real data and
minutes), so a renamed library function would otherwise break them silently. In-process
and cheap: one import each, and argparse's ``--help`` exits before any work.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if p.name != "__init__.py")


def test_every_script_is_in_the_readme() -> None:
    readme = (ROOT / "experiments" / "README.md").read_text()
    assert MODULES, "no experiment found"
    missing = [name for name in MODULES if f"`{name}.py`" not in readme]
    assert not missing, f"experiments/README.md has no line for {missing}"


@pytest.mark.parametrize("name", MODULES)
def test_imports_and_help(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = importlib.import_module(f"experiments.{name}")
    main = getattr(module, "main", None)
    if main is None or "ArgumentParser" not in inspect.getsource(main):
        return  # imported is all that can be checked without data
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out
