"""Issue 17, item 8: is a real case padded off-centre segmented like the plain one?

Copies one real case as is and padded by PAD columns on its first axis (the affine moved so
that the anatomy stays put), runs ``brats_goat.cli predict`` from two source trees on both,
and prints, per tree, the voxels that differ and the whole-tumour Dice of padded against
plain (results/issue17-evidence.md).

    python experiments/hostile_realpad.py CASE [PAD] [--real DIR] [--tree NAME=PATH ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

#: The two trees the issue-17 record compared (before the issue, and its branch).
TREES = ("pre17=/work/wt-pre17", "branch=/work/wt-17")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", help="case folder name under --real")
    parser.add_argument("pad", nargs="?", type=int, help="columns of padding (default 130)")
    parser.add_argument("--real", type=Path, default=Path("/work/shared/data/real"))
    parser.add_argument(
        "--tree", action="append", help="NAME=PATH of a source tree (default: the record's two)"
    )
    args = parser.parse_args(argv)
    trees = [t.split("=", 1) for t in (args.tree or TREES)]
    root = Path("/tmp/wide17/real" + ("" if args.pad is None else str(args.pad)))
    compare(args.case, 130 if args.pad is None else args.pad, args.real, trees, root)


def compare(case: str, pad: int, real: Path, trees: list[list[str]], root: Path) -> None:
    """Write the plain and padded copies under ``root``, predict both from every tree, print."""
    src = real / case
    root.mkdir(parents=True, exist_ok=True)
    (root / "plain" / case).mkdir(parents=True, exist_ok=True)
    (root / "padded" / case).mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.nii.gz")):
        if not any(f.name.endswith(f"-{m}.nii.gz") for m in ("t1n", "t1c", "t2w", "t2f")):
            continue
        shutil.copy(f, root / "plain" / case / f.name)
        img = nib.load(f)
        d = np.asarray(img.dataobj)
        padded = np.pad(d, ((pad, 0), (0, 0), (0, 0)))
        aff = img.affine.copy()
        aff[:3, 3] -= aff[:3, 0] * pad  # voxel i+PAD of padded = voxel i of plain
        out = nib.Nifti1Image(padded, aff, img.header)
        out.set_qform(aff, int(img.header["qform_code"]))
        out.set_sform(aff, int(img.header["sform_code"]))
        nib.save(out, root / "padded" / case / f.name)
    res = {}
    for name, tree in trees:
        for kind in ("plain", "padded"):
            out = root / f"out-{name}-{kind}"
            shutil.rmtree(out, ignore_errors=True)
            p = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "brats_goat.cli",
                    "predict",
                    str(root / kind),
                    str(out),
                    "--quiet",
                    "--refine",
                    "none",
                    "--device",
                    "cpu",
                ],
                env={**os.environ, "PYTHONPATH": tree, "BRATS_GOAT_REFINE": "none"},
                capture_output=True,
                text=True,
            )
            lab = np.asarray(nib.load(out / f"{case}.nii.gz").dataobj)
            res[(name, kind)] = lab[pad:] if kind == "padded" else lab
            print(name, kind, "rc", p.returncode, "labelled", int((lab > 0).sum()), flush=True)
    for name, _ in trees:
        a, b = res[(name, "plain")], res[(name, "padded")]
        print(
            name,
            "padded vs plain: voxels that differ",
            int((a != b).sum()),
            "WT dice",
            round(
                2 * int(((a > 0) & (b > 0)).sum()) / max(1, int((a > 0).sum() + (b > 0).sum())), 4
            ),
        )


if __name__ == "__main__":
    main()
