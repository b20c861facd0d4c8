"""Do the labels of ``--runtime openvino`` agree with eager torch's on every real case?

The project's rule for a faster path: per case, whole-tumour Dice >= 0.999 against today's
(torch) labels. Both segmenters are built by the library with the default pipeline, differing
only in ``InferenceConfig.runtime``; each case is segmented by both, alternately, and the
reconstruct stage's seconds are recorded next to the agreement. Writes
results/runtime-agreement.{json,md}.

    PYTHONPATH=. python experiments/runtime_agreement.py [DATA ...]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from brats_goat.evaluation.metrics import dice, region_mask
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import CaseVolumes, load_case
from brats_goat.segmenter import MViTAESegmenter, PipelineConfig
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.timing import StageTimer

ROOT = Path(__file__).resolve().parents[1]
DATA = [ROOT.parent / "shared" / "data" / "real", ROOT.parent / "shared" / "data" / "real-expert"]
#: Whole-tumour Dice a runtime's labels must reach against torch's, per case.
MIN_WT_DICE = 0.999


def segmenter(runtime: str) -> tuple[MViTAESegmenter, float]:
    """The default mvitae segmenter on the CPU with ``runtime``, and its start-up seconds
    (weights, and the runtime's compilation, which happens at the first case otherwise)."""
    start = time.perf_counter()
    config = PipelineConfig(inference=InferenceConfig(device="cpu", runtime=runtime))
    seg = MViTAESegmenter.from_weights(None, config)
    _ = seg.network
    return seg, time.perf_counter() - start


def run_case(seg: MViTAESegmenter, volumes: CaseVolumes) -> tuple[np.ndarray, float]:
    """Labels of one case and its reconstruct-stage seconds."""
    timer = StageTimer()
    labels = seg.segment(volumes, timer).labels
    return labels, timer.timings["reconstruct"]


def compare(data: list[Path]) -> tuple[list[dict], dict[str, float]]:
    """Per case: Dice of WT/TC/ET and voxels that differ, and each runtime's seconds."""
    segs = {name: segmenter(name) for name in ("torch", "openvino")}
    rows = []
    for case in [c for folder in data for c in discover_cases(folder)]:
        volumes = load_case(case, allow_missing=True)
        out = {name: run_case(seg, volumes) for name, (seg, _) in segs.items()}
        (ref, t_ref), (got, t_got) = out["torch"], out["openvino"]
        row = {"case": case.case_id, "differing_voxels": int(np.count_nonzero(ref != got))}
        for region in ("WT", "TC", "ET"):
            row[region] = round(dice(region_mask(got, region), region_mask(ref, region)), 5)
        row |= {"reconstruct_s_torch": round(t_ref, 2), "reconstruct_s_openvino": round(t_got, 2)}
        rows.append(row)
        print(row, flush=True)
    return rows, {name: round(s, 2) for name, (_, s) in segs.items()}


def markdown(rows: list[dict], startup: dict[str, float], load: str) -> str:
    """results/runtime-agreement.md."""
    ok = all(r["WT"] >= MIN_WT_DICE for r in rows)
    lines = [
        "# Labels of --runtime openvino against torch (default pipeline, CPU)",
        "",
        f"Rule: WT Dice >= {MIN_WT_DICE} per case. Verdict: {'PASS' if ok else 'FAIL'}. "
        f"Start-up (weights + compilation) s: {startup}. Load average: {load}.",
        "",
        "| case | WT | TC | ET | voxels differing | reconstruct s torch | reconstruct s openvino |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['WT']} | {r['TC']} | {r['ET']} | {r['differing_voxels']} "
            f"| {r['reconstruct_s_torch']} | {r['reconstruct_s_openvino']} |"
        )
    t = [sum(r[f"reconstruct_s_{k}"] for r in rows) for k in ("torch", "openvino")]
    lines += ["", f"Reconstruct, all cases: torch {t[0]:.1f} s, openvino {t[1]:.1f} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="*", type=Path, default=DATA)
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    args = parser.parse_args()
    before = f"{os.getloadavg()[0]:.2f}"
    rows, startup = compare(args.data)
    load = f"{before} before, {os.getloadavg()[0]:.2f} after"
    args.results.mkdir(parents=True, exist_ok=True)
    data = {"cases": rows, "startup_s": startup, "load": load, "min_wt_dice": MIN_WT_DICE}
    (args.results / "runtime-agreement.json").write_text(json.dumps(data, indent=1) + "\n")
    (args.results / "runtime-agreement.md").write_text(markdown(rows, startup, load))
    print(markdown(rows, startup, load))


if __name__ == "__main__":
    main()
