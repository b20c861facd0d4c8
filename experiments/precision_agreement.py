"""Do the labels depend on the machine? ``predict`` on every real set, once per oneDNN CPU
path (forced with ``ONEDNN_MAX_CPU_ISA``) and precision, each compared with the reference:
float32 on the first path given (issue 25's rule: WT, TC and ET Dice >= 0.999 per case).

    PYTHONPATH=. python -m experiments.precision_agreement --out results/precision-agreement-COMMIT
        [--isa AVX512_CORE_BF16 --isa AVX2 ...] [--precision auto --precision bfloat16 ...]
        [--data ../shared/data/real ...] [--work /tmp/precision-runs]

A path this CPU lacks is left out with its reason (the report's ``cpu_isa`` would name a
lower path); bfloat16 runs only on paths that compute it natively (elsewhere it is emulated,
and no one would run it). Refinement is off.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from brats_goat.device import cpu_isa, isa_cap, isa_flags
from experiments.output_agreement import MIN_DICE, REGIONS, compare_folders

ROOT = Path(__file__).resolve().parents[1]
SETS = ("real", "real-expert", "brats18-dev")


def run_predict(data: Path, out: Path, isa: str, precision: str) -> dict:
    """One ``predict`` child on ``isa``: its report. Reuses a finished earlier run."""
    report = out / "report.json"
    if not report.is_file():
        env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa}
        cmd = [sys.executable, "-m", "brats_goat.cli", "predict", str(data), str(out)]
        cmd += ["--device", "cpu", "--refine", "none", "--precision", precision, "--quiet"]
        subprocess.run(cmd, env=env, check=True)
    return json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", action="append", help="oneDNN paths (default: this CPU's, AVX2)")
    parser.add_argument("--precision", action="append", help="default: auto, bfloat16")
    parser.add_argument("--data", action="append", type=Path, help="default: the 3 real sets")
    parser.add_argument("--work", type=Path, default=Path("/tmp/precision-runs"))
    parser.add_argument("--out", type=Path, help="results/NAME: writes NAME.json and NAME.md")
    args = parser.parse_args()
    isas = args.isa or [cpu_isa(), "AVX2"]
    precisions = args.precision or ["auto", "bfloat16"]
    data = args.data or [ROOT.parent / "shared" / "data" / s for s in SETS]
    skipped = {}
    for isa in list(isas):
        if cpu_isa(cap=isa_cap(isa)) != isa_cap(isa):
            skipped[isa] = f"this CPU lacks it (it would run {cpu_isa(cap=isa_cap(isa))})"
            isas.remove(isa)
    reference = (isas[0], "float32")
    runs = [reference] + [
        (i, p)
        for i in isas
        for p in ["float32", *precisions]
        if (i, p) != reference and (p != "bfloat16" or "avx512_bf16" in isa_flags(i))
    ]
    rows = []
    for folder in data:
        ref_out = args.work / f"{reference[0]}-float32" / folder.name
        run_predict(folder, ref_out, *reference)
        for isa, precision in runs[1:]:
            out = args.work / f"{isa}-{precision}" / folder.name
            report = run_predict(folder, out, isa, precision)
            for row in compare_folders(ref_out, out):
                row.update(isa=isa, asked=precision, ran=report["precision"])
                row.update(report_isa=report.get("cpu_isa"))
                rows.append(row)
    write(rows, reference, skipped, args.out)


def write(rows: list[dict], reference: tuple[str, str], skipped: dict, out: Path | None) -> None:
    lines = [
        "# Labels per oneDNN CPU path and precision, against float32",
        "",
        f"Reference: float32 on {reference[0]}. Rule: per case WT, TC and ET Dice >= {MIN_DICE}.",
        f"CPU: {cpu_isa(cap=None)} native. Paths left out: {skipped or 'none'}.",
        "",
        "| path | --precision | ran | cases | lowest WT | lowest TC | lowest ET | rule |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["isa"], r["asked"], r["ran"]), []).append(r)
    for (isa, asked, ran), group in groups.items():
        low = {n: min(r[f"{n.lower()}_dice"] for r in group) for n in REGIONS}
        verdict = "met" if min(low.values()) >= MIN_DICE else "NOT met"
        cells = " | ".join(f"{low[n]:.6f}" for n in REGIONS)
        lines.append(f"| {isa} | {asked} | {ran} | {len(group)} | {cells} | {verdict} |")
    lines += ["", "Per case:", "", "| path | --precision | case | WT | TC | ET | voxels differ |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['isa']} | {r['asked']} | {r['case']} | {r['wt_dice']:.6f} | "
            f"{r['tc_dice']:.6f} | {r['et_dice']:.6f} | {r['voxels_differ']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        out.with_suffix(".md").write_text(text)
        data = {"reference": reference, "skipped": skipped, "rows": rows}
        out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
