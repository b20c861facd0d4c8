"""``brats-goat synth`` without the ``phantoms`` extra: one line that says what to install.

nilearn (with pandas and scikit-learn) is only the phantoms' template source, so it is an
optional extra; the rest of the package must import and predict without it. Each check runs
in a fresh interpreter where ``import nilearn`` fails, as on an install without the extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Makes ``import nilearn`` fail in the child (None in sys.modules: ImportError on import).
NO_NILEARN = "import sys; sys.modules['nilearn'] = None; "


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", NO_NILEARN + code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_synth_without_nilearn_exits_2_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "cases"
    done = _run(
        "from brats_goat.cli.main import main; "
        f"main(['synth', {str(out)!r}, '--cases', '1', '--quiet'])"
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert 'pip install "brats-goat[phantoms]"' in lines[0]
    assert not out.exists(), "nothing is written before the check"


def test_package_and_predict_need_no_nilearn() -> None:
    done = _run(
        "import brats_goat, brats_goat.cli.predict, brats_goat.segmenter; "
        "from brats_goat.cli.main import main; main(['predict', '--help'])"
    )
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout
