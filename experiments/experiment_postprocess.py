"""Post-processing experiments on *development* phantoms (seed 3000+, never reported).

Every variant gets its thresholds the same label-free way: the 99.9th percentile of its own
anomaly map inside the analysis mask of healthy development phantoms. Tumour development
phantoms then score it (BraTS 2023 lesion-wise Dice). The benchmark (seeds 2000+, real
cases) is run only on the variant chosen here, so no choice is tuned on reported cases.

    python experiments/experiment_postprocess.py --weights runs/v2/mvitae-small-v2.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from brats_goat.conventions import MODALITIES
from brats_goat.evaluation.metrics import score_case
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case, load_reference_labels
from brats_goat.model.checkpoint import load_checkpoint
from brats_goat.stages.anomaly import analysis_mask, residual_maps
from brats_goat.stages.labels import fuse_labels
from brats_goat.stages.normalise import NormaliseConfig, normalise_stack
from brats_goat.stages.postprocess import PostprocessConfig
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.stages.restore import restore_volume
from brats_goat.stages.threshold import (
    binarise,
    drop_up_to,
    healthy_peak,
    largest_component_voxels,
)
from brats_goat.synth import synthesize

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The benchmark's kinds and cohorts, so development and reported phantoms stay alike.
from benchmark import KIND_COHORT  # scripts/ sibling

ROOT = Path(__file__).resolve().parents[1]
SEED = 3000
PERCENTILE = 99.9


@dataclass
class Prepared:
    case_id: str
    kind: str
    normalised: np.ndarray
    brain: np.ndarray
    recon: np.ndarray
    ref: np.ndarray | None
    #: Estimate after k restoration passes (``--restore K``), k = 1..K.
    restored: dict[int, np.ndarray] = field(default_factory=dict)


MapFn = Callable[[Prepared, np.ndarray, PostprocessConfig], dict[str, np.ndarray]]


def ae_maps(p: Prepared, mask: np.ndarray, post: PostprocessConfig) -> dict[str, np.ndarray]:
    return residual_maps(p.normalised, p.recon, mask, post)


def restored_maps(k: int) -> MapFn:
    """Residual against the estimate after ``k`` restoration passes (brats_goat.stages.restore)."""

    def maps(p: Prepared, mask: np.ndarray, post: PostprocessConfig) -> dict[str, np.ndarray]:
        return residual_maps(p.normalised, p.restored[k], mask, post)

    return maps


def restored_flair_maps(k: int) -> MapFn:
    """FLAIR residual against the restored estimate, t1c against the plain reconstruction."""

    def maps(p: Prepared, mask: np.ndarray, post: PostprocessConfig) -> dict[str, np.ndarray]:
        out = residual_maps(p.normalised, p.recon, mask, post)
        out["t2f"] = residual_maps(p.normalised, p.restored[k], mask, post)["t2f"]
        return out

    return maps


def intensity_maps(p: Prepared, mask: np.ndarray, post: PostprocessConfig) -> dict[str, np.ndarray]:
    return residual_maps(p.normalised, np.zeros_like(p.normalised), mask, post)


def ae_t2w_maps(p: Prepared, mask: np.ndarray, post: PostprocessConfig) -> dict[str, np.ndarray]:
    """Whole-tumour map = mean of the t2f and t2w residuals (edema is bright on both)."""
    maps = residual_maps(p.normalised, p.recon, mask, post)
    swapped = p.normalised.copy()
    swapped[MODALITIES.index("t2f")] = p.normalised[MODALITIES.index("t2w")]
    recon = p.recon.copy()
    recon[MODALITIES.index("t2f")] = p.recon[MODALITIES.index("t2w")]
    t2w = residual_maps(swapped, recon, mask, post)["t2f"]
    maps["t2f"] = (maps["t2f"] + t2w) / 2
    return maps


def ae_and_intensity_maps(
    p: Prepared, mask: np.ndarray, post: PostprocessConfig
) -> dict[str, np.ndarray]:
    """Residual where the image is also above its healthy mean (z > 0): a voxel that is
    dark in absolute terms cannot be edema or enhancement, whatever the model says."""
    maps = residual_maps(p.normalised, p.recon, mask, post)
    for name in maps:
        z = p.normalised[MODALITIES.index(name)]
        maps[name] = np.where(z > 0, maps[name], np.float32(0))
    return maps


def _gated(maps: dict[str, np.ndarray], p: Prepared) -> dict[str, np.ndarray]:
    """min(z, residual): a voxel counts only as far as it is both brighter than healthy
    tissue on average (z) and brighter than the model's healthy reconstruction. Bright
    healthy structures (reconstructed well) and reconstruction blur (not bright) each fail
    one of the two tests, so the healthy tail of the combined map is shorter than either."""
    for name in maps:
        z = p.normalised[MODALITIES.index(name)]
        maps[name] = np.minimum(maps[name], np.where(maps[name] != 0, z, np.float32(0)))
    return maps


def ae_gated_maps(p: Prepared, mask: np.ndarray, post: PostprocessConfig) -> dict[str, np.ndarray]:
    return _gated(residual_maps(p.normalised, p.recon, mask, post), p)


def ae_t2w_gated_maps(
    p: Prepared, mask: np.ndarray, post: PostprocessConfig
) -> dict[str, np.ndarray]:
    maps = ae_t2w_maps(p, mask, post)
    wt = _gated({"t2f": maps["t2f"]}, p)["t2f"]
    z2 = p.normalised[MODALITIES.index("t2w")]
    maps["t2f"] = np.minimum(wt, np.where(wt != 0, z2, np.float32(0)))
    maps["t1c"] = _gated({"t1c": maps["t1c"]}, p)["t1c"]
    return maps


@dataclass
class Variant:
    name: str
    maps: MapFn = ae_maps
    post: dict = field(default_factory=dict)
    #: Keep the largest component plus every other one whose peak exceeds the highest
    #: component peak seen on the healthy development phantoms (label-free: by
    #: construction no healthy calibration component would survive).
    hysteresis: bool = False
    #: Drop the t1c component (ET) unless it is larger than every t1c component left on the
    #: healthy development phantoms (label-free: no healthy calibration component would pass).
    et_size_gate: bool = False


VARIANTS = [
    Variant("intensity baseline (same rule)", intensity_maps),
    Variant("AE residual (pipeline defaults)"),
    Variant("AE, no median filter", post={"median_size": 0}),
    Variant("AE, median 5", post={"median_size": 5}),
    Variant("AE, erosion 1", post={"brain_erosion": 1}),
    Variant("AE, erosion 5", post={"brain_erosion": 5}),
    Variant("AE, no Otsu", post={"use_otsu": False}),
    Variant("AE, all components >= 50 vx", post={"keep_largest": False}),
    Variant("intensity, all components >= 50 vx", intensity_maps, post={"keep_largest": False}),
    Variant("AE, t2f+t2w residual mean", ae_t2w_maps),
    Variant("AE residual where z > 0", ae_and_intensity_maps),
    Variant("AE min(z, residual)", ae_gated_maps),
    Variant("AE min(z, residual), all components", ae_gated_maps, post={"keep_largest": False}),
    Variant("AE min(z, residual), t2f+t2w", ae_t2w_gated_maps),
    Variant(
        "AE min(z, residual), t2f+t2w, all components",
        ae_t2w_gated_maps,
        post={"keep_largest": False},
    ),
    Variant("AE, t2f+t2w, all components", ae_t2w_maps, post={"keep_largest": False}),
    Variant("intensity, largest + components above healthy peak", intensity_maps, hysteresis=True),
    Variant("AE, largest + components above healthy peak", hysteresis=True),
    Variant("AE min(z, residual), largest + above healthy peak", ae_gated_maps, hysteresis=True),
    Variant("AE restored x1", restored_maps(1)),
    Variant("AE restored x2", restored_maps(2)),
    Variant("AE restored x3", restored_maps(3)),
    Variant("AE restored x3, largest + above healthy peak", restored_maps(3), hysteresis=True),
    Variant("AE restored x2, FLAIR only", restored_flair_maps(2)),
    Variant(
        "AE restored x2, FLAIR only, largest + above healthy peak",
        restored_flair_maps(2),
        hysteresis=True,
    ),
    Variant(
        "intensity, ET larger than any healthy t1c component", intensity_maps, et_size_gate=True
    ),
    Variant(
        "AE restored x2, FLAIR only, ET larger than any healthy t1c component",
        restored_flair_maps(2),
        et_size_gate=True,
    ),
]


def prepare(
    folder: Path,
    kind: str,
    model: torch.nn.Module,
    device: torch.device,
    restore: PostprocessConfig,
    normalise: NormaliseConfig | None = None,
) -> list:
    """Normalise, reconstruct and (``restore.restore_iterations`` > 0) restore each case."""
    out = []
    for case in discover_cases(folder):
        volumes = load_case(case)
        normalised, brain = normalise_stack(
            volumes.stack(MODALITIES), normalise or NormaliseConfig()
        )
        passes: dict[int, np.ndarray] = {}
        restore_volume(
            model,
            normalised,
            brain,
            restore,
            InferenceConfig(),
            device,
            on_pass=passes.__setitem__,
        )
        # Restoration stops early when nothing is suspect: later passes equal the last.
        for k in range(1, restore.restore_iterations + 1):
            passes.setdefault(k, passes[k - 1])
        ref = load_reference_labels(case, volumes, 1e-3)
        out.append(Prepared(case.case_id, kind, normalised, brain, passes.pop(0), ref, passes))
    return out


def segment(p: Prepared, v: Variant, post: PostprocessConfig, thr: dict[str, float]):
    mask = analysis_mask(p.brain, post.brain_erosion)
    maps = v.maps(p, mask, post)
    binary = {
        name: binarise(res, mask, thr[name], post, thr.get(name + "_high"))
        for name, res in maps.items()
    }
    if "t1c_min_size" in thr:  # the pipeline's ET minimum (brats_goat.stages.threshold)
        binary["t1c"] = drop_up_to(binary["t1c"], int(thr["t1c_min_size"]))
    return fuse_labels(binary["t2f"], binary["t1c"], post.et_within_wt_dilation)


def calibrate(healthy: list[Prepared], v: Variant, post: PostprocessConfig) -> dict[str, float]:
    cases = []
    for p in healthy:
        mask = analysis_mask(p.brain, post.brain_erosion)
        cases.append((v.maps(p, mask, post), mask))
    thr: dict[str, float] = {}
    for name in ("t1c", "t2f"):
        pooled = np.concatenate([maps[name][mask] for maps, mask in cases])
        thr[name] = round(float(np.percentile(pooled, PERCENTILE)), 3)
    if v.hysteresis:
        for name in ("t1c", "t2f"):
            high = max(healthy_peak(maps[name], mask, thr[name], post) for maps, mask in cases)
            thr[name + "_high"] = round(high, 3)
    if v.et_size_gate:
        # The largest t1c component binarise keeps on each healthy phantom (0 if none).
        kept = [
            largest_component_voxels(binarise(m["t1c"], mask, thr["t1c"], post))
            for m, mask in cases
        ]
        thr["t1c_min_size"] = max(kept)
    return thr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--per-kind", type=int, default=3)
    parser.add_argument("--healthy", type=int, default=3)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--only", help="|-separated variant names to run (default: all)")
    parser.add_argument(
        "--restore", type=int, default=0, help="restoration passes to precompute (restored xK)"
    )
    args = parser.parse_args()
    model, meta = load_checkpoint(args.weights, None)
    device = torch.device("cpu")
    base = meta["postprocess"]
    restore = dataclasses.replace(base, restore_iterations=args.restore)
    tumour: list[Prepared] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for i, kind in enumerate(KIND_COHORT):
            synthesize(tmp / kind, args.per_kind, seed=args.seed + i, kind=kind, progress=False)
            tumour += prepare(tmp / kind, kind, model, device, restore)
        synthesize(tmp / "h", args.healthy, seed=args.seed + 10, healthy=True, progress=False)
        healthy = prepare(tmp / "h", "healthy", model, device, restore)
    rows = []
    chosen = [v for v in VARIANTS if not args.only or v.name in args.only.split("|")]
    for v in chosen:
        start = time.time()
        post = dataclasses.replace(base, **v.post)
        thr = calibrate(healthy, v, post)
        per_kind: dict[str, dict[str, list[float]]] = {}
        for p in tumour:
            labels = segment(p, v, post, thr)
            scores = score_case(labels, p.ref, KIND_COHORT[p.kind])
            for region, s in scores.items():
                per_kind.setdefault(p.kind, {}).setdefault(region, []).append(s.lesionwise_dice)
        fp = []
        for p in healthy:
            labels = segment(p, v, post, thr)
            fp.append(int((labels > 0).sum() > 0))
        row = {
            "variant": v.name,
            "thresholds": thr,
            "lw_dice": {
                k: {r: round(float(np.mean(x)), 3) for r, x in d.items()}
                for k, d in per_kind.items()
            },
            "healthy_flagged": round(float(np.mean(fp)), 2),
        }
        allwt = [s for d in per_kind.values() for s in d["WT"]]
        row["mean_wt"] = round(float(np.mean(allwt)), 3)
        rows.append(row)
        print(json.dumps(row), f"({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
    lines = [
        f"# Post-processing experiments on development phantoms (seed {args.seed}+)",
        "",
        f"Weights {args.weights.name} ({meta['info'].get('best_val_loss', '-')} val loss); "
        f"{args.per_kind} phantoms per kind; thresholds = {PERCENTILE}th percentile on "
        f"{args.healthy} healthy development phantoms, per variant.",
        "",
        "| variant | thr t1c | thr t2f | WT glioma | WT mets | WT menin. | mean WT | "
        "ET glioma | ET menin. | TC glioma | healthy flagged |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = r["lw_dice"]
        lines.append(
            f"| {r['variant']} | {r['thresholds']['t1c']} | {r['thresholds']['t2f']} | "
            f"{d['glioma']['WT']} | {d['metastases']['WT']} | {d['meningioma']['WT']} | "
            f"{r['mean_wt']} | {d['glioma']['ET']} | {d['meningioma']['ET']} | "
            f"{d['glioma']['TC']} | "
            f"{r['healthy_flagged']} |"
        )
    text = "\n".join(lines) + "\n"
    args.out.mkdir(exist_ok=True)
    (args.out / f"experiments-{args.weights.stem}.md").write_text(text)
    (args.out / f"experiments-{args.weights.stem}.json").write_text(json.dumps(rows, indent=2))
    print(text)


if __name__ == "__main__":
    main()
