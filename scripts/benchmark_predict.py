"""Seconds per case and peak memory of `brats-goat predict` on the real cases (CPU).

Next to it, the floor that no pipeline can beat: reading the four inputs of a case and
writing one label map; every stage is also given as a multiple of that floor, so the
stage worth working on next stands out. One predict process runs over all cases (3 or
more, start-up shared). Results go to results/predict-speed-<commit>[-METHOD][-RUNTIME].{json,md}
(no RUNTIME suffix for the default, auto).

    python -m scripts.benchmark_predict [--data ../shared/data/real] [--device cpu]
                                        [--method mvitae|mvitae+litemedsam|...]
                                        [--runtime auto|torch|openvino]
                                        [--precision auto|float32|bfloat16]
                                        [--note "machine loaded by ..."]
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
    """Seconds per case allowed on a 2-core CPU, start-up included (issue 18): 5 without
    refinement, 12 with a SAM-family refinement."""
    _, _, refine = spec.partition("+")
    return 12 if refine and not refine.startswith("none") else 5


#: Peak RSS allowed (GB), with or without refinement (issue 18).
TARGET_RSS_GB = 2


def mean_stages(cases: list[dict]) -> dict[str, float]:
    """Mean seconds per case of each stage, over the cases of a run report."""
    stages: dict[str, float] = {}
    for c in cases:
        for k, v in c["timings_s"].items():
            stages[k] = stages.get(k, 0.0) + v / len(cases)
    return {k: round(v, 3) for k, v in stages.items()}


def floor_ratios(stages: dict[str, float], floor: float) -> dict[str, float]:
    """Each stage's seconds as a multiple of the I/O floor (what reading and writing cost)."""
    return {k: round(v / floor, 2) for k, v in stages.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "real")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--method", default="mvitae", help="METHOD[+REFINE], as in benchmark.py")
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--note", default="", help="How the machine was (idle, loaded by ...)")
    parser.add_argument("--runtime", default="auto", help="predict --runtime (auto|torch|openvino)")
    parser.add_argument(
        "--precision", default="auto", help="predict --precision (auto = the shipped default)"
    )
    args = parser.parse_args()
    if len(discover_cases(args.data)) < 3:
        raise SystemExit("benchmark_predict needs 3 or more cases (start-up shared)")
    commit = current_commit()
    with tempfile.TemporaryDirectory() as tmp:
        floor = io_floor(args.data, Path(tmp))
        usage: dict = {}
        wall, peak_gb, report = run_cli_predict(
            args.method,
            args.data,
            Path(tmp) / "pred",
            args.device,
            usage,
            extra=("--runtime", args.runtime, "--precision", args.precision),
        )
    if report["summary"]["failed"]:
        raise SystemExit(f"predict failed on some cases: {report['summary']}")
    n = len(report["cases"])
    per_case = {c["case_id"]: round(sum(c["timings_s"].values()), 2) for c in report["cases"]}
    stages = mean_stages(report["cases"])
    result = {
        "commit": commit,
        "method": args.method,
        "runtime": args.runtime,
        "precision": report.get("precision"),
        "cpu_isa": report.get("cpu_isa"),
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
        "stage_over_io_floor": floor_ratios(stages, floor),
        "whole_run_over_io_floor": round(wall / n / floor, 1),
        "peak_rss_gb": round(peak_gb, 2),
        "targets": {"s_per_case": target_s(args.method), "peak_rss_gb": TARGET_RSS_GB},
        "note": args.note,
    }
    args.results.mkdir(exist_ok=True)
    suffix = "" if args.method == "mvitae" else "-" + args.method.replace("+", "-")
    suffix += "" if args.runtime == "auto" else "-" + args.runtime
    suffix += "" if args.precision == "auto" else "-" + args.precision
    stem = args.results / f"predict-speed-{commit}{suffix}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# predict speed ({args.method}, runtime {args.runtime}, precision "
        f"{result['precision']} on {result['cpu_isa']}), commit {commit}, {result['device']}, "
        f"{result['cpus']} CPUs",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| seconds per case (whole run / cases, incl. start-up) | "
        f"{result['s_per_case_including_startup']} | <= {target_s(args.method)} |",
        f"| CPU seconds per case (user + system, the child process) | "
        f"{result['cpu_s_per_case']} | |",
        f"| peak RSS (GB) | {result['peak_rss_gb']} | <= {TARGET_RSS_GB} |",
        f"| I/O floor: read 4 inputs + write 1 output (s/case) | {floor:.2f} | |",
        f"| whole run per case / I/O floor | {result['whole_run_over_io_floor']} | |",
        "",
        "| stage | seconds per case | x I/O floor |",
        "|---|---|---|",
        *(f"| {k} | {v} | {result['stage_over_io_floor'][k]} |" for k, v in stages.items()),
        "",
        *([f"Note: {args.note}", ""] if args.note else []),
        "Per case (pipeline seconds): " + ", ".join(f"{k} {v}" for k, v in per_case.items()),
    ]
    stem.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
