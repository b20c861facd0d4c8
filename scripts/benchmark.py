"""Quality and speed of every method, side by side, on phantoms and on the real cases.

For each method (`predict --method ...`) and each data set it runs the real CLI in a child
process (seconds per case, that process's peak RSS), scores the labels with the BraTS 2023
lesion-wise metrics of `brats_goat.evaluation.metrics`, and writes one table:
results/benchmark-<commit>.{json,md}.

Data sets: phantoms from `brats-goat synth` of every tumour kind (seeds 2000+: never used to
calibrate anything), healthy phantoms (false positives per case), and the real cases of
../shared/data/real (lesion-wise scores where a `-ref` label map exists; detection of the
rough mask of BraTS-GLI-00001-000, which is a box, not a segmentation), the same real
cases with only t1c and t2f (the missing-modality scenario), and the expert-labelled
gliomas of ../shared/data/real-expert (t2f + t1c only) and ../shared/data/brats18-dev (all
four sequences), scored per case and as a mean.

    python scripts/benchmark.py [--per-kind 3] [--healthy 3]
                                [--methods intensity,mvitae,mvitae+litemedsam]
                                [--real-expert ../shared/data/real-expert]
                                [--brats18-dev ../shared/data/brats18-dev]

A method is `METHOD[+REFINE[:SLICES]]`: `mvitae+litemedsam` is `predict --method mvitae
--refine litemedsam`, `mvitae+litemedsam:0` the same with `--refine-max-slices 0` (every
candidate slice); a plain `mvitae` runs with `--refine none`, whatever the shipped default.
A `/peaks` suffix (`intensity/peaks`) adds `--components largest+peaks`.
`--sets real,phantom-glioma` limits the data sets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from brats_goat.evaluation.evaluate import evaluate_folder
from brats_goat.io.discover import discover_cases
from brats_goat.stages.threshold import components
from brats_goat.synth import synthesize

ROOT = Path(__file__).resolve().parents[1]
KIND_COHORT = {"glioma": "gli", "metastases": "met", "meningioma": "men"}
SEED = 2000


def current_commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


def split_method(spec: str) -> tuple[str, str, str | None]:
    """``mvitae+litemedsam:0`` -> ("mvitae", "litemedsam", "0"); ``mvitae`` -> ("mvitae",
    "none", None)."""
    method, _, refine = spec.partition("+")
    refine, _, slices = refine.partition(":")
    return method, refine or "none", slices or None


def run_cli_predict(
    spec: str,
    inp: Path,
    out: Path,
    device: str,
    usage_out: dict | None = None,
    weights: Path | None = None,
    extra: tuple[str, ...] = (),
) -> tuple[float, float, dict]:
    """Run the CLI in a child: its wall seconds, its own peak RSS in GB (``os.wait4``) and the
    run report (``usage_out`` gets its CPU seconds: wall time alone misleads on a shared
    machine). Exit 1 (some case failed) still returns; anything else aborts."""
    # "<spec>/peaks": the opt-in component rule (--components largest+peaks).
    spec, _, rule = spec.partition("/")
    method, refine, slices = split_method(spec)
    cmd = [
        sys.executable,
        "-m",
        "brats_goat.cli",
        "predict",
        str(inp),
        str(out),
        "--quiet",
        "--method",
        method,
        "--device",
        device,
        "--refine",
        refine,
        *(["--refine-max-slices", slices] if slices else []),
        *(["--components", "largest+peaks"] if rule == "peaks" else []),
        *(["--weights", str(weights)] if weights is not None and method == "mvitae" else []),
        *extra,
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if usage_out is not None:
        usage_out["cpu_s"] = usage.ru_utime + usage.ru_stime
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"predict {method} on {inp} exited {code}:\n{stderr}")
    return wall, usage.ru_maxrss / 2**20, json.loads((out / "report.json").read_text())


def run_predict(
    method: str, inp: Path, out: Path, device: str, weights: Path | None = None
) -> dict:
    """One benchmark row's speed columns."""
    usage: dict = {}
    wall, peak_gb, report = run_cli_predict(method, inp, out, device, usage, weights)
    n = len(report["cases"])
    refine = [c["refine"] for c in report["cases"] if c.get("refine")]
    channels = [ch for r in refine for ch in r["channels"].values()]
    return {
        "refine": report.get("refine", "none"),
        "sam_accepted": sum(ch["accepted"] for ch in channels) if refine else None,
        "sam_prompts": sum(ch["prompts"] for ch in channels) if refine else None,
        "cpu_s_per_case": round(usage["cpu_s"] / n, 2),
        "refine_s_per_case": round(
            float(np.mean([c["timings_s"].get("refine", 0.0) for c in report["cases"]])), 2
        ),
        "sam_slices_per_case": round(sum(ch["slices"] for ch in channels) / n, 2)
        if refine
        else None,
        "cases": n,
        "failed": report["summary"]["failed"],
        "device": report["device"],
        "s_per_case": round(wall / n, 2),
        "pipeline_s_per_case": round(
            float(np.mean([sum(c["timings_s"].values()) for c in report["cases"]])), 2
        ),
        "peak_rss_gb": round(peak_gb, 2),
    }


def lesionwise(out: Path, ref_dir: Path, cohort: str) -> dict:
    result = evaluate_folder(out, ref_dir, cohort, output_dir=out)
    means = result.means()
    return {
        "lw_dice": {r: round(means[r]["lesionwise_dice"], 3) for r in ("WT", "TC", "ET")},
        "lesion_detection": round(means["WT"]["lesion_detection_rate"], 3),
        "case_detection": round(means["WT"]["case_detection_rate"], 3),
        "scored_cases": int(means["WT"]["n_cases"]),
        "per_case": {
            case_id: {r: round(s[r].lesionwise_dice, 3) for r in ("WT", "TC", "ET")}
            for case_id, s in sorted(result.cases.items())
        },
    }


def fp_per_case(out: Path) -> dict:
    """Healthy phantoms: every predicted whole-tumour component is a false positive."""
    counts = []
    for path in sorted(out.glob("*.nii.gz")):
        if "-anomaly-" in path.name:
            continue
        _, sizes = components(np.asarray(nib.load(path).dataobj) > 0)
        counts.append(len(sizes) - 1)
    return {
        "fp_components_per_case": round(float(np.mean(counts)), 2),
        "cases_flagged": round(float(np.mean([c > 0 for c in counts])), 3),
    }


def rough_mask_detection(out: Path, data: Path) -> dict:
    """Cases whose only reference is a rough mask: is it overlapped at all?"""
    hits = {}
    for case in discover_cases(data):
        if case.reference is None or "roughmask" not in case.reference.name:
            continue
        pred = out / f"{case.case_id}.nii.gz"
        ref = np.asarray(nib.load(case.reference).dataobj) > 0
        hits[case.case_id] = bool(
            pred.is_file() and ((np.asarray(nib.load(pred).dataobj) > 0) & ref).any()
        )
    return {"rough_mask_detected": hits}


def subset_copy(data: Path, out: Path, keep: tuple[str, ...] = ("t1c", "t2f")) -> Path:
    """Symlinks to only ``keep`` modalities (and the reference) of every case in ``data``:
    the missing-modality scenario on exactly the same images."""
    for case in discover_cases(data):
        folder = out / case.case_id
        folder.mkdir(parents=True, exist_ok=True)
        files = [case.files[m] for m in keep if m in case.files]
        for path in [*files, *([case.reference] if case.reference else [])]:
            (folder / path.name).symlink_to(path.resolve())
    return out


def phantom_summary(rows: list[dict]) -> list[dict]:
    """Mean over the tumour kinds (equal case counts) per method: the phantom headline."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        kinds = [
            r for r in rows if r["method"] == method and r["data"].startswith("phantom ")
            and "lw_dice" in r
        ]  # fmt: skip
        if kinds:
            out.append(
                {
                    "method": method,
                    "kinds": len(kinds),
                    "lw_dice": {
                        reg: round(float(np.mean([r["lw_dice"][reg] for r in kinds])), 3)
                        for reg in ("WT", "TC", "ET")
                    },
                }
            )
    return out


def fmt(row: dict, key: str, sub: str | None = None) -> str:
    value = row.get(key)
    if sub is not None and isinstance(value, dict):
        value = value.get(sub)
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def accepted(row: dict) -> str:
    """``accepted/prompts`` of the refinement in a row, ``-`` when it did not run."""
    if row.get("sam_prompts") is None:
        return "-"
    return f"{row['sam_accepted']}/{row['sam_prompts']}"


def per_case_tables(rows: list[dict], data: str = "real-expert") -> list[str]:
    """Lesion-wise Dice per case of the expert-labelled set, one row per case and method."""
    scored = [r for r in rows if r["data"] == data and r.get("per_case")]
    if not scored:
        return []
    lines = [
        "",
        f"{data}, per case:",
        "",
        "| case | method | WT | TC | ET |",
        "|---|---|---|---|---|",
    ]
    for row in scored:
        for case_id, dice in row["per_case"].items():
            lines.append(
                f"| {case_id} | {row['method']} | {dice['WT']:.3f} | {dice['TC']:.3f} | "
                f"{dice['ET']:.3f} |"
            )
    return lines


def markdown(result: dict) -> str:
    head = (
        "| data | method | cases (scored) | LW-Dice WT | LW-Dice TC | LW-Dice ET | lesion det. | "
        "case det. | FP comp./healthy case | SAM masks accepted | s/case | CPU s/case | "
        "peak RSS GB | device |"
    )
    lines = [
        f"# Benchmark, commit {result['commit']}",
        "",
        f"Machine: {result['machine']}; weights {result['weights_sha256'][:12]}"
        + (
            f" (restoration passes: {result['restore_iterations']})"
            if result.get("restore_iterations") is not None
            else ""
        )
        + f"; phantom seed {result['seed']}.",
        "",
        head,
        "|" + "---|" * 14,
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['data']} | {row['method']} | {row['cases']} ({fmt(row, 'scored_cases')}) | "
            f"{fmt(row, 'lw_dice', 'WT')} | "
            f"{fmt(row, 'lw_dice', 'TC')} | {fmt(row, 'lw_dice', 'ET')} | "
            f"{fmt(row, 'lesion_detection')} | {fmt(row, 'case_detection')} | "
            f"{fmt(row, 'fp_components_per_case')} | {accepted(row)} | {row['s_per_case']} | "
            f"{row.get('cpu_s_per_case', '-')} | {row['peak_rss_gb']} | {row['device']} |"
        )
    lines += [
        "",
        "Phantoms, mean over the tumour kinds:",
        "",
        "| method | LW-Dice WT | LW-Dice TC | LW-Dice ET |",
        "|---|---|---|---|",
    ]
    for row in phantom_summary(result["rows"]):
        lines.append(
            f"| {row['method']} | {fmt(row, 'lw_dice', 'WT')} | {fmt(row, 'lw_dice', 'TC')} | "
            f"{fmt(row, 'lw_dice', 'ET')} |"
        )
    lines += per_case_tables(result["rows"])
    lines += per_case_tables(result["rows"], "brats18-dev")
    for row in result["rows"]:
        if row.get("rough_mask_detected"):
            lines.append("")
            lines.append(f"Rough-mask detection ({row['method']}): {row['rough_mask_detected']}")
    lines.append("")
    lines.append(
        "LW = BraTS 2023 lesion-wise (misses and false positives score 0); the real cases "
        "are scored against model-made references (see ../shared/data/real/README), so they "
        "measure agreement, not truth; the real-expert and brats18-dev cases against expert "
        "labels."
    )
    if any("litemedsam" in row["method"] for row in result["rows"]):
        lines += ["", LITEMEDSAM_CAVEAT]
    return "\n".join(lines) + "\n"


#: Said beside every LiteMedSAM figure on BraTS cases.
LITEMEDSAM_CAVEAT = (
    "LiteMedSAM's training data includes public BraTS data: on the real cases, which are or "
    "derive from public BraTS cases, it may have seen the very images it refines."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=3, help="tumour phantoms per kind")
    parser.add_argument("--healthy", type=int, default=3, help="healthy phantoms")
    parser.add_argument("--methods", default="intensity,mvitae,mvitae+litemedsam")
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "real")
    parser.add_argument(
        "--real-expert", type=Path, default=ROOT.parent / "shared" / "data" / "real-expert"
    )
    parser.add_argument(
        "--brats18-dev", type=Path, default=ROOT.parent / "shared" / "data" / "brats18-dev"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", type=Path, help="MViT-AE weights (default: shipped)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--render", type=Path, help="only re-write the .md of a saved .json")
    parser.add_argument("--sets", help="comma-separated data sets (default: all), e.g. real")
    args = parser.parse_args()
    if args.render:
        args.render.with_suffix(".md").write_text(markdown(json.loads(args.render.read_text())))
        return
    methods = args.methods.split(",")
    commit = current_commit()
    rows: list[dict] = []
    weights_sha, restore_passes = "", None
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sets: list[tuple[str, Path, str | None]] = []
        for i, (kind, cohort) in enumerate(KIND_COHORT.items()):
            folder = tmp / f"phantom-{kind}"
            synthesize(folder, args.per_kind, seed=args.seed + i, kind=kind, progress=False)
            sets.append((f"phantom {kind}", folder, cohort))
        healthy = tmp / "phantom-healthy"
        synthesize(healthy, args.healthy, seed=args.seed + 10, healthy=True, progress=False)
        sets.append(("phantom healthy", healthy, None))
        if args.real.is_dir():
            sets.append(("real", args.real, "gli"))
            subset = subset_copy(args.real, tmp / "real-t1c-t2f")
            sets.append(("real t1c+t2f only", subset, "gli"))
        if args.real_expert.is_dir():
            sets.append(("real-expert", args.real_expert, "gli"))
        if args.brats18_dev.is_dir():
            sets.append(("brats18-dev", args.brats18_dev, "gli"))
        if args.sets:
            wanted = set(args.sets.split(","))
            sets = [s for s in sets if s[0].replace(" ", "-") in wanted]
        for data_name, folder, cohort in sets:
            for method in methods:
                out = tmp / "pred" / data_name.replace(" ", "-") / method
                print(f"{data_name}: {method} ...", file=sys.stderr, flush=True)
                row = {"data": data_name, "method": method}
                row.update(run_predict(method, folder, out, args.device, args.weights))
                if method.startswith("mvitae"):
                    report = json.loads((out / "report.json").read_text())
                    weights_sha = report["weights_sha256"]
                    post = report["config"]["postprocess"]
                    restore_passes = post.get("restore_iterations", 0)
                if cohort is None:
                    row.update(fp_per_case(out))
                else:
                    row.update(lesionwise(out, folder, cohort))
                if data_name.startswith("real"):
                    row.update(rough_mask_detection(out, folder))
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    result = {
        "commit": commit,
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, {platform.machine()}",
        "weights_sha256": weights_sha or "-",
        "restore_iterations": restore_passes,
        "seed": args.seed,
        "rows": rows,
    }
    args.results.mkdir(exist_ok=True)
    stem = args.results / f"benchmark-{commit}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
