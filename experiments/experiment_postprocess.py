"""Post-processing experiments on *development* phantoms (seed 3000+, never reported).

Every variant gets its thresholds the same label-free way: the 99.9th percentile of its own
anomaly map inside the analysis mask of healthy development phantoms. Tumour development
phantoms then score it (BraTS 2023 lesion-wise Dice). The benchmark (seeds 2000+, real
cases) is run only on the variant chosen here, so no choice is tuned on reported cases.

A variant is a map (how its anomaly map is made: the experiment) and post-processing
settings; everything after the map is the library's: each variant builds the segmenter
``predict --method mvitae|intensity`` would build with its post-processing, and runs that
segmenter's anomaly stage (mask, median filter), threshold stage (fixed + Otsu threshold,
morphology, component rule, ET minimum) and label fusion. Calibration collects the same
statistics as ``brats_goat.calibration.thresholds.subset_statistics``, from the variant's maps.

    python -m experiments.experiment_postprocess --weights runs/v2/mvitae-small-v2.pt
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
from typing import Any

import numpy as np
import torch

from brats_goat.conventions import MODALITIES, subset_key
from brats_goat.evaluation.metrics import score_case
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case, load_reference_labels
from brats_goat.model.checkpoint import load_checkpoint
from brats_goat.model.network import MViTAE
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.segmenter import IntensitySegmenter, MViTAESegmenter, PipelineConfig, Segmenter
from brats_goat.stages.labels import fuse_labels
from brats_goat.stages.normalise import NormaliseConfig, normalise_stack
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.stages.refine_config import RefineConfig
from brats_goat.stages.restore import restore_volume
from brats_goat.stages.threshold import healthy_peak, largest_component_voxels
from brats_goat.synth import synthesize

# The benchmark's kinds and cohorts, so development and reported phantoms stay alike.
from scripts.benchmark import KIND_COHORT

ROOT = Path(__file__).resolve().parents[1]
SEED = 3000
PERCENTILE = 99.9
CPU = torch.device("cpu")
#: Development phantoms have every sequence.
PRESENT = MODALITIES


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


Maps = tuple[dict[str, np.ndarray], np.ndarray]
#: A variant's anomaly maps and analysis mask, made with the segmenter's anomaly stage.
MapFn = Callable[[Segmenter, Prepared], Maps]


def ae_maps(seg: Segmenter, p: Prepared) -> Maps:
    """The pipeline's anomaly stage against the plain reconstruction."""
    return seg.anomaly(p.normalised, p.recon, p.brain, PRESENT)


def intensity_maps(seg: Segmenter, p: Prepared) -> Maps:
    """The intensity baseline's anomaly stage: the healthy estimate is 0
    (``IntensitySegmenter.reconstruct``), so the map is the z-scored image itself."""
    return seg.anomaly(p.normalised, np.zeros_like(p.normalised), p.brain, PRESENT)


def restored_maps(k: int) -> MapFn:
    """Residual against the estimate after ``k`` restoration passes (brats_goat.stages.restore)."""

    def maps(seg: Segmenter, p: Prepared) -> Maps:
        return seg.anomaly(p.normalised, p.restored[k], p.brain, PRESENT)

    return maps


def restored_flair_maps(k: int) -> MapFn:
    """FLAIR residual against the restored estimate, t1c against the plain reconstruction."""

    def maps(seg: Segmenter, p: Prepared) -> Maps:
        out, mask = ae_maps(seg, p)
        out["t2f"] = restored_maps(k)(seg, p)[0]["t2f"]
        return out, mask

    return maps


def ae_t2w_maps(seg: Segmenter, p: Prepared) -> Maps:
    """Whole-tumour map = mean of the t2f and t2w residuals (edema is bright on both)."""
    maps, mask = ae_maps(seg, p)
    swapped = p.normalised.copy()
    swapped[MODALITIES.index("t2f")] = p.normalised[MODALITIES.index("t2w")]
    recon = p.recon.copy()
    recon[MODALITIES.index("t2f")] = p.recon[MODALITIES.index("t2w")]
    t2w = seg.anomaly(swapped, recon, p.brain, PRESENT)[0]["t2f"]
    maps["t2f"] = (maps["t2f"] + t2w) / 2
    return maps, mask


def ae_and_intensity_maps(seg: Segmenter, p: Prepared) -> Maps:
    """Residual where the image is also above its healthy mean (z > 0): a voxel that is
    dark in absolute terms cannot be edema or enhancement, whatever the model says."""
    maps, mask = ae_maps(seg, p)
    for name in maps:
        z = p.normalised[MODALITIES.index(name)]
        maps[name] = np.where(z > 0, maps[name], np.float32(0))
    return maps, mask


def _gated(maps: dict[str, np.ndarray], p: Prepared) -> dict[str, np.ndarray]:
    """min(z, residual): a voxel counts only as far as it is both brighter than healthy
    tissue on average (z) and brighter than the model's healthy reconstruction. Bright
    healthy structures (reconstructed well) and reconstruction blur (not bright) each fail
    one of the two tests, so the healthy tail of the combined map is shorter than either."""
    for name in maps:
        z = p.normalised[MODALITIES.index(name)]
        maps[name] = np.minimum(maps[name], np.where(maps[name] != 0, z, np.float32(0)))
    return maps


def ae_gated_maps(seg: Segmenter, p: Prepared) -> Maps:
    maps, mask = ae_maps(seg, p)
    return _gated(maps, p), mask


def ae_t2w_gated_maps(seg: Segmenter, p: Prepared) -> Maps:
    maps, mask = ae_t2w_maps(seg, p)
    wt = _gated({"t2f": maps["t2f"]}, p)["t2f"]
    z2 = p.normalised[MODALITIES.index("t2w")]
    maps["t2f"] = np.minimum(wt, np.where(wt != 0, z2, np.float32(0)))
    maps["t1c"] = _gated({"t1c": maps["t1c"]}, p)["t1c"]
    return maps, mask


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

    @property
    def method(self) -> str:
        """The ``predict --method`` whose segmenter runs this variant."""
        return "intensity" if self.maps is intensity_maps else "mvitae"


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


def variant_segmenter(
    model: MViTAE | None, method: str, post: PostprocessConfig, peaks: bool = False
) -> Segmenter:
    """The segmenter ``predict --method METHOD --refine none`` builds when ``post`` is its
    calibrated post-processing; ``peaks``: the component rule ``largest+peaks``."""
    config = PipelineConfig(
        postprocess=post,
        intensity=post,
        inference=InferenceConfig(device="cpu"),
        component_rule="largest+peaks" if peaks else "largest",
        refine=RefineConfig("none"),
    )
    if method == "intensity":
        return IntensitySegmenter(config)
    if model is None:
        raise ValueError("the mvitae segmenter needs a model")
    return MViTAESegmenter(model, config, device=CPU)


def at_thresholds(post: PostprocessConfig, thr: dict[str, float]) -> PostprocessConfig:
    """``post`` holding a variant's calibration (``calibrate``) where the segmenter reads
    it: the thresholds, the peak values of the component rule (``*_high``) and the ET
    minimum (``t1c_min_size``) where measured; none of the checkpoint's own."""
    key = subset_key(PRESENT)
    peaks = {key: (thr["t1c_high"], thr["t2f_high"])} if "t1c_high" in thr else {}
    et_min = {key: int(thr["t1c_min_size"])} if "t1c_min_size" in thr else {}
    return dataclasses.replace(
        post,
        threshold_t1c=thr["t1c"],
        threshold_t2f=thr["t2f"],
        thresholds_by_subset={},
        peak_thresholds_by_subset=peaks,
        et_min_voxels_by_subset=et_min,
    )


def calibrate(
    healthy: list[Maps], v: Variant, post: PostprocessConfig, model: MViTAE | None
) -> dict[str, float]:
    """``subset_statistics`` over the variant's maps of the healthy development phantoms:
    the percentile of the pooled maps, then at those thresholds the highest component peak
    (``hysteresis``) and the largest t1c component the threshold stage keeps (``et_size_gate``)."""
    thr: dict[str, float] = {}
    for name in ("t1c", "t2f"):
        pooled = np.concatenate([maps[name][mask] for maps, mask in healthy])
        thr[name] = round(float(np.percentile(pooled, PERCENTILE)), 3)
    if v.hysteresis:
        for name in ("t1c", "t2f"):
            high = max(healthy_peak(maps[name], mask, thr[name], post) for maps, mask in healthy)
            thr[name + "_high"] = round(high, 3)
    if v.et_size_gate:
        # The threshold stage at these thresholds, largest component, no ET minimum yet.
        probe = variant_segmenter(model, v.method, at_thresholds(post, thr))
        kept = [
            largest_component_voxels(probe.threshold(maps, mask, PRESENT)["t1c"])
            for maps, mask in healthy
        ]
        thr["t1c_min_size"] = max(kept)
    return thr


def labels_of(seg: Segmenter, maps: Maps) -> np.ndarray:
    """The segmenter's threshold stage then label fusion (``Segmenter.segment``, no refine)."""
    binary = seg.threshold(*maps, PRESENT)
    return fuse_labels(binary["t2f"], binary["t1c"], seg.postprocess.et_within_wt_dilation)


def run_variant(
    v: Variant,
    model: MViTAE,
    base: PostprocessConfig,
    tumour: list[Prepared],
    healthy: list[Prepared],
) -> dict[str, Any]:
    """Calibrate ``v`` on the healthy phantoms, score it on the tumour phantoms."""
    post = dataclasses.replace(base, **v.post)
    # The anomaly stage does not depend on the thresholds: one set of healthy maps serves
    # calibration and the false-positive count.
    healthy_maps = [v.maps(variant_segmenter(model, v.method, post), p) for p in healthy]
    thr = calibrate(healthy_maps, v, post, model)
    seg = variant_segmenter(model, v.method, at_thresholds(post, thr), peaks=v.hysteresis)
    per_kind: dict[str, dict[str, list[float]]] = {}
    for p in tumour:
        scores = score_case(labels_of(seg, v.maps(seg, p)), p.ref, KIND_COHORT[p.kind])
        for region, s in scores.items():
            per_kind.setdefault(p.kind, {}).setdefault(region, []).append(s.lesionwise_dice)
    fp = [int((labels_of(seg, maps) > 0).sum() > 0) for maps in healthy_maps]
    row: dict[str, Any] = {
        "variant": v.name,
        "thresholds": thr,
        "lw_dice": {
            k: {r: round(float(np.mean(x)), 3) for r, x in d.items()} for k, d in per_kind.items()
        },
        "healthy_flagged": round(float(np.mean(fp)), 2),
    }
    allwt = [s for d in per_kind.values() for s in d["WT"]]
    row["mean_wt"] = round(float(np.mean(allwt)), 3)
    return row


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, meta: dict[str, Any]) -> str:
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
    return "\n".join(lines) + "\n"


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
    base = meta["postprocess"]
    restore = dataclasses.replace(base, restore_iterations=args.restore)
    tumour: list[Prepared] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for i, kind in enumerate(KIND_COHORT):
            synthesize(tmp / kind, args.per_kind, seed=args.seed + i, kind=kind, progress=False)
            tumour += prepare(tmp / kind, kind, model, CPU, restore)
        synthesize(tmp / "h", args.healthy, seed=args.seed + 10, healthy=True, progress=False)
        healthy = prepare(tmp / "h", "healthy", model, CPU, restore)
    rows = []
    chosen = [v for v in VARIANTS if not args.only or v.name in args.only.split("|")]
    for v in chosen:
        start = time.time()
        rows.append(run_variant(v, model, base, tumour, healthy))
        print(json.dumps(rows[-1]), f"({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
    text = markdown(rows, args, meta)
    args.out.mkdir(exist_ok=True)
    (args.out / f"experiments-{args.weights.stem}.md").write_text(text)
    (args.out / f"experiments-{args.weights.stem}.json").write_text(json.dumps(rows, indent=2))
    print(text)


if __name__ == "__main__":
    main()
