"""``brats-goat synth`` without the ``phantoms`` extra: one line that says what to install.

nilearn (with pandas and scikit-learn) is only the phantoms' template source, so it is an
optional extra; the rest of the package must import and predict without it. The check runs
in a fresh interpreter where ``import nilearn`` fails, as on an install without the extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: In the child: nilearn cannot be imported (None in sys.modules); the package, predict's
#: command and the segmenter import; ``predict --help`` works; then ``synth`` is run.
CHILD = """
import sys
sys.modules["nilearn"] = None
import brats_goat, brats_goat.cli.predict, brats_goat.segmenter
from brats_goat.cli.main import main
assert main(["predict", "--help"], standalone_mode=False) == 0
print("predict ok", flush=True)
main(["synth", sys.argv[1], "--cases", "1", "--quiet"])
"""


def test_without_nilearn_predict_works_and_synth_exits_2_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "cases"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
        check=False,
    )
    assert "Usage:" in done.stdout and "predict ok" in done.stdout, done.stderr
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert 'pip install "brats-goat[phantoms]"' in lines[0]
    assert not out.exists(), "nothing is written before the check"
