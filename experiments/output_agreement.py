"""Do two runs of ``predict`` write the same labels? Per case, whole-tumour Dice and voxels
that differ between the label maps of two OUTPUT folders.

The project's rule for a faster path (issue 25): per case, WT, TC and ET Dice >= 0.999
against the reference labels (float32, or today's). Run ``predict`` before and after a
change into two folders, then

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

from brats_goat.evaluation.metrics import DEFAULT_RULES, dice, region_mask

#: Dice a changed pipeline must keep against the reference labels, per case and region.
MIN_DICE = 0.999
#: BraTS regions (WT, TC, ET), as the scorer defines them.
REGIONS: tuple[str, ...] = DEFAULT_RULES.region_names


def compare(before: Path, after: Path) -> dict:
    """Agreement of one case's two label maps."""
    a = np.asarray(nib.load(before).dataobj)
    b = np.asarray(nib.load(after).dataobj)
    return {
        "case": before.name.removesuffix(".nii.gz"),
        **{
            f"{name.lower()}_dice": round(
                float(dice(region_mask(a, name), region_mask(b, name))), 6
            )
            for name in REGIONS
        },
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
    lines = [f"# {title}", "", f"Rule: per case WT, TC and ET Dice >= {MIN_DICE}.", ""]
    lines += [
        "| run | case | WT Dice | TC Dice | ET Dice | voxels differ "
        "| WT voxels before / after | same file |"
    ]
    lines += ["|---|---|---|---|---|---|---|---|"]
    for r in rows:
        wt = " / ".join(str(v) for v in r["wt_voxels"])
        same = "yes" if r["same_file"] else "no"
        lines.append(
            f"| {r['folder']} | {r['case']} | {r['wt_dice']:.6f} | {r['tc_dice']:.6f} "
            f"| {r['et_dice']:.6f} | {r['voxels_differ']} | {wt} | {same} |"
        )
    worst = {name: min(r[f"{name.lower()}_dice"] for r in rows) for name in REGIONS}
    verdict = "met" if min(worst.values()) >= MIN_DICE else "NOT met"
    lowest = ", ".join(f"{name} {value:.6f}" for name, value in worst.items())
    lines += ["", f"Lowest Dice: {lowest}. The rule is {verdict} on {len(rows)} cases."]
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
