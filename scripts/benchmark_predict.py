"""Seconds per case and peak memory of `brats-goat predict` on the real cases (CPU).

Next to it, the floor that no pipeline can beat: reading the four inputs of a case and
writing one label map. Results go to results/predict-speed-<commit>.{json,md}.

    python -m scripts.benchmark_predict [--data ../shared/data/real] [--device cpu]
                                        [--method mvitae|mvitae+litemedsam|...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from brats_goat.io.discover import discover_cases
from brats_goat.io.write import like_reference, write_nifti_atomic
from scripts.benchmark import current_commit, run_cli_predict

ROOT = Path(__file__).resolve().parents[1]


def io_floor(data: Path, scratch: Path) -> float:
    """Mean seconds to read four modalities and write one uint8 map, per case."""
    times = []
    for case in discover_cases(data):
        start = time.perf_counter()
        images = [nib.load(p) for p in case.files.values()]
        arrays = [im.get_fdata(dtype=np.float32) for im in images]
        labels = (arrays[0] > arrays[0].mean()).astype(np.uint8)
        write_nifti_atomic(like_reference(labels, images[0]), scratch / f"{case.case_id}.nii.gz")
        times.append(time.perf_counter() - start)
    return float(np.mean(times))


def target_s(spec: str) -> int:
    """Seconds per case allowed on this CPU: 30 without refinement, 60 with a SAM-family
    refinement (the budget its issue set for LiteMedSAM)."""
    _, _, refine = spec.partition("+")
    return 60 if refine and not refine.startswith("none") else 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "real")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--method", default="mvitae", help="METHOD[+REFINE], as in benchmark.py")
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    args = parser.parse_args()
    commit = current_commit()
    with tempfile.TemporaryDirectory() as tmp:
        floor = io_floor(args.data, Path(tmp))
        usage: dict = {}
        wall, peak_gb, report = run_cli_predict(
            args.method, args.data, Path(tmp) / "pred", args.device, usage
        )
    if report["summary"]["failed"]:
        raise SystemExit(f"predict failed on some cases: {report['summary']}")
    n = len(report["cases"])
    per_case = {c["case_id"]: round(sum(c["timings_s"].values()), 2) for c in report["cases"]}
    stages: dict[str, float] = {}
    for c in report["cases"]:
        for k, v in c["timings_s"].items():
            stages[k] = round(stages.get(k, 0.0) + v / n, 2)
    result = {
        "commit": commit,
        "method": args.method,
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
        "cpus": os.cpu_count(),
        "device": report["device"],
        "weights_sha256": report["weights_sha256"],
        "cases": n,
        "wall_s_total": round(wall, 2),
        "s_per_case_including_startup": round(wall / n, 2),
        "cpu_s_per_case": round(usage["cpu_s"] / n, 2),
        "s_per_case_pipeline": per_case,
        "mean_stage_s": stages,
        "io_floor_s_per_case": round(floor, 2),
        "peak_rss_gb": round(peak_gb, 2),
        "targets": {"s_per_case": target_s(args.method), "peak_rss_gb": 3},
    }
    args.results.mkdir(exist_ok=True)
    suffix = "" if args.method == "mvitae" else "-" + args.method.replace("+", "-")
    stem = args.results / f"predict-speed-{commit}{suffix}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# predict speed ({args.method}), commit {commit}, {result['device']}, "
        f"{result['cpus']} CPUs",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| seconds per case (whole run / cases, incl. start-up) | "
        f"{result['s_per_case_including_startup']} | <= {target_s(args.method)} |",
        f"| CPU seconds per case (user + system, the child process) | "
        f"{result['cpu_s_per_case']} | |",
        f"| peak RSS (GB) | {result['peak_rss_gb']} | <= 3 |",
        f"| I/O floor: read 4 inputs + write 1 output (s/case) | {floor:.2f} | |",
        "",
        "Mean seconds per stage: " + ", ".join(f"{k} {v}" for k, v in stages.items()),
        "",
        "Per case (pipeline seconds): " + ", ".join(f"{k} {v}" for k, v in per_case.items()),
    ]
    stem.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
