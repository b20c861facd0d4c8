"""Where does SAM-family refinement help? Per-prompt evidence against reference labels.

For every case (phantoms of a calibration seed range that the benchmark never uses, and
optionally the real cases with a `-ref` map) the MViT-AE candidates are computed once; on up
to --slices slices per channel each slice is encoded once and prompted with several prompt
variants (box; box + positive points; box + positive + negative points). Each prompt is
recorded with SAM's predicted IoU, its Dice with the anomaly component, and the slice's
Dice with the reference before and after replacing the component by SAM's mask
(t2f against the whole tumour, t1c against the enhancing tumour). The accept rule is chosen
on the calibration phantoms only; the real cases show where it helps or hurts.

    python experiments/refine_analysis.py --out results/refine-analysis.json [--real]
    python experiments/refine_analysis.py --summarise results/refine-analysis.json   # -> .md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from brats_goat.conventions import LABEL_ET, MODALITIES
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case, load_reference_labels
from brats_goat.masks import dice
from brats_goat.segmenter import PipelineConfig, make_segmenter
from brats_goat.stages.refine import candidate_slices, slice_prompts, to_prompts, window
from brats_goat.stages.refine_config import RefineConfig
from brats_goat.stages.sam_backends import litemedsam_backend
from brats_goat.synth import synthesize

ROOT = Path(__file__).resolve().parents[1]
#: Calibration phantoms: seeds far from the benchmark's 2000+ and from training.
CALIBRATION_SEED = 700
VARIANTS = {
    "box": RefineConfig(points=0, negative_points=0),
    "box+5pos": RefineConfig(points=5, negative_points=0),
    "box+5pos+3neg": RefineConfig(points=5, negative_points=3),
}


def reference_for(channel: str, labels: np.ndarray) -> np.ndarray:
    """t2f is refined towards the whole tumour, t1c towards the enhancing tumour."""
    return labels > 0 if channel == "t2f" else labels == LABEL_ET


def analyse_case(case, segmenter, backend, n_slices: int, data: str) -> list[dict]:
    volumes = load_case(case)
    ref_labels = load_reference_labels(case, volumes)
    cand = segmenter.candidates(volumes)
    rows = []
    for channel in ("t2f", "t1c"):
        mask = cand.binary[channel]
        if not mask.any():
            continue
        ref = reference_for(channel, ref_labels)
        normalised = cand.normalised[MODALITIES.index(channel)]
        image = window(normalised, cand.brain, RefineConfig().window_percentiles)
        zs = candidate_slices(mask, RefineConfig().min_area, n_slices)
        lesion_z = np.flatnonzero(mask.any(axis=(0, 1)))
        span = max(int(lesion_z[-1] - lesion_z[0]), 1)
        encoded = backend.encode(np.stack([image[..., z].T for z in zs])) if zs else None
        for variant, cfg in VARIANTS.items():
            prompts = slice_prompts(mask, zs, cfg)
            if not prompts:
                continue
            masks, scores = backend.predict(encoded, to_prompts(prompts, zs))
            for p, sam, score in zip(prompts, masks, scores, strict=True):
                x0, y0, x1, y1 = p.box.astype(int)
                inside = np.zeros_like(sam)
                inside[y0 : y1 + 1, x0 : x1 + 1] = True
                cand_mask = sam & inside & cand.brain[..., p.z].T
                old_plane = mask[..., p.z].T
                new_plane = (old_plane & ~p.component) | cand_mask
                ref_plane = ref[..., p.z].T
                rows.append(
                    {
                        "data": data,
                        "case": case.case_id,
                        "channel": channel,
                        "variant": variant,
                        "z": p.z,
                        "depth": round(min(p.z - lesion_z[0], lesion_z[-1] - p.z) / span, 3),
                        "area": int(p.component.sum()),
                        "sam_area": int(cand_mask.sum()),
                        "ref_area": int(ref_plane.sum()),
                        "score": round(float(score), 4),
                        "agreement": round(dice(cand_mask, p.component), 4),
                        "dice_before": round(dice(old_plane, ref_plane), 4),
                        "dice_after": round(dice(new_plane, ref_plane), 4),
                    }
                )
    return rows


#: Accept rules compared: (name, min predicted IoU, min Dice with the anomaly component).
RULES = (
    ("paper: score >= 0.9", 0.9, 0.0),
    ("score >= 0.9, agreement >= 0.5", 0.9, 0.5),
    ("score >= 0.8, agreement >= 0.5", 0.8, 0.5),
    ("score >= 0.7, agreement >= 0.5", 0.7, 0.5),
    ("agreement >= 0.5 only", 0.0, 0.5),
    ("always accept", 0.0, 0.0),
)


def size_bin(area: int) -> str:
    return "small (<150 px)" if area < 150 else "medium" if area < 1000 else "large (>=1000 px)"


def effect(rows: list[dict], min_score: float, min_agreement: float) -> dict:
    """Mean change of the slice's Dice with the reference when the rule decides."""
    accepted = [r for r in rows if r["score"] >= min_score and r["agreement"] >= min_agreement]
    deltas = [r["dice_after"] - r["dice_before"] for r in accepted]
    return {
        "prompts": len(rows),
        "accepted": len(accepted),
        "mean_delta_all": round(sum(deltas) / len(rows), 4) if rows else 0.0,
        "mean_delta_accepted": round(float(np.mean(deltas)), 4) if deltas else 0.0,
        "better": sum(d > 0.01 for d in deltas),
        "worse": sum(d < -0.01 for d in deltas),
    }


def summarise(result: dict) -> str:
    rows = result["rows"]
    lines = [
        f"# Refinement analysis ({result['backend']}, MViT-AE weights "
        f"{(result['weights_sha256'] or '-')[:12]})",
        "",
        "Per prompt: change of the slice's Dice with the reference (t2f vs whole tumour, t1c vs "
        "enhancing tumour) if SAM's mask replaces the anomaly component; mean over all prompts "
        "(rejected ones count 0) and over accepted ones; better/worse = accepted prompts that "
        "moved the slice Dice by more than 0.01.",
        "",
        "| data | channel | prompt | rule | prompts | accepted | mean dDice (all) | "
        "mean dDice (accepted) | better | worse |",
        "|" + "---|" * 10,
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        data = "phantom (calibration)" if r["data"].startswith("phantom") else r["data"]
        groups.setdefault((data, r["channel"], r["variant"]), []).append(r)
    for (data, channel, variant), group in sorted(groups.items()):
        for name, min_score, min_agreement in RULES:
            e = effect(group, min_score, min_agreement)
            lines.append(
                f"| {data} | {channel} | {variant} | {name} | {e['prompts']} | {e['accepted']} | "
                f"{e['mean_delta_all']:+.3f} | {e['mean_delta_accepted']:+.3f} | {e['better']} | "
                f"{e['worse']} |"
            )
    lines += [
        "",
        "## By component size and position (box prompt, always accepted)",
        "",
        "| data | channel | where | prompts | mean dDice | better | worse | SAM area / "
        "component area | mean score |",
        "|" + "---|" * 9,
    ]
    for (data, channel, variant), group in sorted(groups.items()):
        if variant != "box":
            continue
        parts: dict[str, list[dict]] = {}
        for r in group:
            parts.setdefault(size_bin(r["area"]), []).append(r)
            where = "lesion end slices (outer 20%)" if r["depth"] < 0.2 else "lesion middle"
            parts.setdefault(where, []).append(r)
        for where, part in parts.items():
            e = effect(part, 0.0, 0.0)
            ratio = np.mean([r["sam_area"] / max(r["area"], 1) for r in part])
            score = np.mean([r["score"] for r in part])
            lines.append(
                f"| {data} | {channel} | {where} | {e['prompts']} | {e['mean_delta_all']:+.3f} | "
                f"{e['better']} | {e['worse']} | {ratio:.2f} | {score:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "refine-analysis.json")
    parser.add_argument("--per-kind", type=int, default=2)
    parser.add_argument("--slices", type=int, default=8, help="slices per channel and case")
    parser.add_argument("--real", action="store_true", help="also the real cases with -ref")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "real")
    parser.add_argument("--summarise", type=Path, help="only write the .md of a saved .json")
    args = parser.parse_args()
    if args.summarise:
        md = summarise(json.loads(args.summarise.read_text()))
        args.summarise.with_suffix(".md").write_text(md)
        print(md)
        return
    torch.manual_seed(0)
    base = PipelineConfig()
    config = dataclasses.replace(
        base,
        inference=dataclasses.replace(base.inference, device="cpu"),
        refine=RefineConfig(backend="none"),  # the script prompts the model itself
    )
    segmenter = make_segmenter("mvitae", None, config)
    backend = litemedsam_backend(torch.device("cpu"))
    rows: list[dict] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sets = []
        for i, kind in enumerate(("glioma", "meningioma", "metastases")):
            folder = Path(tmp) / kind
            synthesize(folder, args.per_kind, seed=CALIBRATION_SEED + i, kind=kind, progress=False)
            sets += [(f"phantom {kind}", c) for c in discover_cases(folder)]
        if args.real and args.data.is_dir():
            sets += [
                ("real", c)
                for c in discover_cases(args.data)
                if c.reference is not None and "roughmask" not in c.reference.name
            ]
        for data, case in sets:
            print(f"{data}: {case.case_id}", file=sys.stderr, flush=True)
            rows += analyse_case(case, segmenter, backend, args.slices, data)
    result = {
        "backend": backend.name,
        "weights_sha256": segmenter.meta.get("sha256"),
        "calibration_seed": CALIBRATION_SEED,
        "slices_per_channel": args.slices,
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(summarise(result))
    print(f"{len(rows)} prompts -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
