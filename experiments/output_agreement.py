"""Do two runs of ``predict`` write the same labels? Per case, whole-tumour Dice and voxels
that differ between the label maps of two OUTPUT folders.

The project's rule for a faster path (issue 18): per case, WT Dice >= 0.999 against
today's labels. Run ``predict`` before and after a change into two folders, then

    PYTHONPATH=. python -m experiments.output_agreement BEFORE AFTER [BEFORE2 AFTER2 ...]
        [--out results/NAME] [--title "..."]

Writes NAME.{json,md} when ``--out`` is given; prints the table either way.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from brats_goat.evaluation.metrics import dice

#: Whole-tumour Dice a changed pipeline must keep against today's labels, per case.
MIN_WT_DICE = 0.999


def compare(before: Path, after: Path) -> dict:
    """Agreement of one case's two label maps."""
    a = np.asarray(nib.load(before).dataobj)
    b = np.asarray(nib.load(after).dataobj)
    return {
        "case": before.name.removesuffix(".nii.gz"),
        "wt_dice": round(float(dice(a > 0, b > 0)), 6),
        "voxels_differ": int((a != b).sum()),
        "wt_voxels": [int((a > 0).sum()), int((b > 0).sum())],
        "same_file": hashlib.sha256(before.read_bytes()).digest()
        == hashlib.sha256(after.read_bytes()).digest(),
    }


def compare_folders(before: Path, after: Path) -> list[dict]:
    """Every label map of ``before``; one missing from ``after`` is an error."""
    rows = []
    for path in sorted(before.glob("*.nii.gz")):
        if "-anomaly-" in path.name:
            continue
        other = after / path.name
        if not other.exists():
            raise SystemExit(f"{other} is missing: the runs did not segment the same cases")
        rows.append({"folder": after.name, **compare(path, other)})
    return rows


def markdown(rows: list[dict], title: str) -> str:
    lines = [f"# {title}", "", f"Rule: per case WT Dice >= {MIN_WT_DICE}.", ""]
    lines += ["| run | case | WT Dice | voxels differ | WT voxels before / after | same file |"]
    lines += ["|---|---|---|---|---|---|"]
    for r in rows:
        wt = " / ".join(str(v) for v in r["wt_voxels"])
        same = "yes" if r["same_file"] else "no"
        lines.append(
            f"| {r['folder']} | {r['case']} | {r['wt_dice']:.6f} | {r['voxels_differ']} | {wt} "
            f"| {same} |"
        )
    worst = min(r["wt_dice"] for r in rows)
    verdict = "met" if worst >= MIN_WT_DICE else "NOT met"
    lines += ["", f"Lowest WT Dice {worst:.6f}: the rule is {verdict} on {len(rows)} cases."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="BEFORE AFTER pairs")
    parser.add_argument("--out", type=Path, help="results/NAME: writes NAME.json and NAME.md")
    parser.add_argument("--title", default="Label agreement of two predict runs")
    args = parser.parse_args()
    if len(args.folders) % 2:
        parser.error("give the folders in BEFORE AFTER pairs")
    pairs = zip(args.folders[::2], args.folders[1::2], strict=True)
    rows = [row for before, after in pairs for row in compare_folders(before, after)]
    if not rows:
        raise SystemExit("no label maps found")
    text = markdown(rows, args.title)
    print(text)
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
