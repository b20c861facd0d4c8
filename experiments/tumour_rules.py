"""Issue 26: label rules tried on the cached evidence of ``experiments.tumour_evidence``.

Each case's maps are made by the library's own anomaly stage (the segmenter's
``anomaly`` and ``threshold``), and the labels by ``brats_goat.stages.tumour``; this script
only loops, scores (``brats_goat.evaluation.metrics.score_case``) and tabulates. Healthy
subjects (cases without a reference) report false-positive components outside their
lesion masks.

    python -m experiments.tumour_rules /work/runs/cache26 --rule shipped
    python -m experiments.tumour_rules /work/runs/cache26 --rule evidence
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from brats_goat.evaluation.metrics import score_case
from brats_goat.masks import connected_components
from brats_goat.segmenter import Candidates, Segmenter, make_segmenter
from brats_goat.stages.tumour import TumourConfig

#: The development sets, by case-ID prefix (the cache holds all of them).
SETS = {
    "brats18-dev": "Brats18_",
    "real-expert": "BraTS15-",
    "real": ("BrainLes", "TCGA"),
}
#: Healthy subjects (``healthy-real``): false-positive components outside their lesions.
HEALTHY = ("KIRBY", "MS-", "WML-")


def load(path: Path) -> dict:
    d = dict(np.load(path))
    d["present"] = tuple(str(m) for m in d["present"])
    if "ref" in d:
        ref = d["ref"].copy()
        ref[ref == 4] = 3  # BraTS 2018's ET
        d["ref"] = ref
    return d


def candidates(seg: Segmenter, d: dict) -> Candidates:
    """The segmenter's anomaly and threshold stages on the cached reconstruction."""
    present = d["present"]
    recon = d["recon"] if seg.method == "mvitae" else np.zeros_like(d["stack"])
    maps, mask = seg.anomaly(d["stack"], recon, d["brain"], present)
    binary = seg.threshold(maps, mask, present, ("t1c", "t2f"), d["stack"])
    return Candidates(d["stack"], d["brain"], mask, maps, 0.0, binary)


def labels_for(seg: Segmenter, d: dict, rule: str) -> np.ndarray:
    if rule == "shipped":
        return d["labels"]
    cand = candidates(seg, d)
    return seg.labels(cand.binary, cand, d["present"])


def fp_components(labels: np.ndarray, lesion: np.ndarray | None) -> int:
    """Components of the whole tumour that touch no known lesion (grown by 3 voxels, as
    lesion-wise scoring groups a reference): the false positives that scoring would charge."""
    found, n = connected_components(labels > 0)
    if lesion is None or n == 0:
        return n
    hit = np.unique(found[ndimage.binary_dilation(lesion, iterations=3)])
    return n - int((hit > 0).sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("--rule", default="evidence", choices=["shipped", "evidence", "paper"])
    parser.add_argument("--method", default="mvitae", choices=["mvitae", "intensity"])
    parser.add_argument("--weights", default=None)
    parser.add_argument("--set", dest="config", default="{}", help="TumourConfig fields (JSON)")
    parser.add_argument("--labels", default="{}", help="LabelsConfig fields (JSON)")
    parser.add_argument(
        "--fusion",
        nargs=2,
        type=float,
        default=None,
        metavar=("W", "T2F"),
        help="late-fusion weight and its t2f threshold (every subset)",
    )
    parser.add_argument("--post", default="{}", help="PostprocessConfig fields (JSON)")
    parser.add_argument("--only", default="", help="case-ID substring")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    seg = make_segmenter(args.method, args.weights)
    tumour = dataclasses.replace(TumourConfig(), **json.loads(args.config))
    if args.rule == "paper":
        tumour = dataclasses.replace(tumour, enabled=False)
    labels = dataclasses.replace(seg.config.labels, **json.loads(args.labels))
    seg.config = dataclasses.replace(seg.config, tumour=tumour, labels=labels)
    if json.loads(args.post):
        post = dataclasses.replace(seg.postprocess, **json.loads(args.post))
        seg.config = dataclasses.replace(seg.config, postprocess=post)
    if args.fusion:
        post = seg.postprocess
        subsets = {k: (t1c, args.fusion[1]) for k, (t1c, _) in post.thresholds_by_subset.items()}
        post = dataclasses.replace(
            post,
            fusion_weight=args.fusion[0],
            threshold_t2f=args.fusion[1],
            thresholds_by_subset=subsets,
        )
        seg.config = dataclasses.replace(seg.config, postprocess=post)
    rows: dict[str, dict] = {}
    for path in sorted(args.cache.glob("*.npz")):
        if args.only not in path.stem:
            continue
        d = load(path)
        labels = labels_for(seg, d, args.rule)
        if path.stem.startswith(HEALTHY):
            rows[path.stem] = {"fp": fp_components(labels, d.get("lesion"))}
        elif "ref" in d and d["ref"].max() > 1:
            s = score_case(labels, d["ref"])
            rows[path.stem] = {k: round(v.lesionwise_dice, 4) for k, v in s.items()}
            rows[path.stem]["detail"] = " ".join(
                f"{k} g{v.dice:.2f} r{v.n_ref_lesions} fp{v.n_fp}" for k, v in s.items()
            )
        if path.stem in rows:
            print(path.stem, rows[path.stem], flush=True)
    for name, prefix in SETS.items():
        got = [r for k, r in rows.items() if k.startswith(prefix) and "WT" in r]
        if got:
            mean = {k: round(float(np.mean([r[k] for r in got])), 4) for k in ("WT", "TC", "ET")}
            print(f"{name} ({len(got)}): {mean}")
    healthy = [r["fp"] for r in rows.values() if "fp" in r]
    if healthy:
        print(f"healthy ({len(healthy)}): FP components {sum(healthy)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
