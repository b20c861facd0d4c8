"""``evaluate_folder`` / ``brats-goat evaluate``, and a cross-check against ``brats-evaluation``.

The official package (panoptica inside) pins numpy<2.3, so it lives in its own virtualenv and
is called through ``scripts/official_metrics.py`` in a subprocess::

    python3 -m venv .venv-eval && .venv-eval/bin/pip install brats-evaluation==0.0.10

``BRATS_EVAL_PYTHON`` may point at another interpreter that has it. The cross-check scenarios
avoid the places where the two definitions differ on purpose (ours is BraTS 2023: dilation
grouping, size threshold, many-to-one hits; panoptica: one-to-one matching, no grouping), and
the known differences are asserted explicitly so a change in either shows up.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from brats_goat.cli.evaluate import evaluate
from brats_goat.evaluation.evaluate import EvaluationUsageError, evaluate_folder
from brats_goat.evaluation.metrics import ScoringRules, region_mask

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "scripts" / "official_metrics.py"
SHAPE = (40, 40, 40)
#: brats-evaluation's summaries charge 373 (the 2023 code and our default: 374).
OFFICIAL_RULES = ScoringRules(hd95_penalty=373.0)


def tumour(centre: tuple[int, int, int], scale: float = 1.0, shape=SHAPE) -> np.ndarray:
    """Ellipsoidal tumour: SNFH (2) around a core whose ET (3) rim encloses necrosis (1)."""
    x, y, z = np.indices(shape)
    cx, cy, cz = centre

    def inside(rx: float, ry: float, rz: float) -> np.ndarray:
        rx, ry, rz = rx * scale, ry * scale, rz * scale
        return (x - cx) ** 2 / rx**2 + (y - cy) ** 2 / ry**2 + (z - cz) ** 2 / rz**2 <= 1

    labels = np.zeros(shape, dtype=np.uint8)
    labels[inside(7.5, 6.5, 5.5)] = 2
    labels[inside(4.5, 4.2, 3.6)] = 3
    labels[inside(2.2, 2.0, 1.6)] = 1
    return labels


def save(labels: np.ndarray, path: Path, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(
        nib.Nifti1Image(labels.astype(np.uint8), np.eye(4) if affine is None else affine), path
    )
    return path


def scenarios() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """case -> (prediction, reference)."""
    a, b = tumour((12, 12, 13)), tumour((28, 27, 27))
    empty = np.zeros(SHAPE, dtype=np.uint8)
    shifted = np.roll(a, (1, 1, 0), axis=(0, 1, 2))
    return {
        "case-perfect": (a, a),
        "case-shifted": (shifted, a),
        "case-deformed": (tumour((13, 11, 13), scale=1.2), a),
        "case-missed": (shifted, np.maximum(a, b)),
        "case-fp": (np.maximum(a, b), a),
        "case-emptyref": (b, empty),
        "case-emptyboth": (empty, empty),
    }


# ---------------------------------------------------------------- folders and command line


def test_pairs_reference_layouts(tmp_path: Path) -> None:
    lesion = tumour((20, 20, 20))
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    save(lesion, pred / "A.nii.gz")
    save(lesion, pred / "B.nii.gz")
    with_small = lesion.copy()
    with_small[35:38, 35:38, 35:38] = 2  # 27 voxels: dropped by the size threshold
    save(with_small, pred / "C.nii.gz")
    save(lesion, pred / "orphan.nii.gz")
    save(lesion, pred / "A-anomaly-flair.nii.gz")  # predict --save-maps output, not a label map
    save(lesion, ref / "A" / "A-seg.nii.gz")  # BraTS case folder
    save(lesion, ref / "A" / "A-t1n.nii.gz")
    save(lesion, ref / "B-ref.nii.gz")
    save(with_small, ref / "C.nii.gz")
    save(lesion, ref / "D-seg.nii.gz")  # no prediction: scored as empty and flagged
    save(lesion, ref / "E-t2f.nii.gz")  # an MRI channel, not a reference

    result = evaluate_folder(pred, ref, cohort="gli", output_dir=tmp_path / "out")
    assert sorted(result.cases) == ["A", "B", "C", "D"]
    assert result.missing == ["D"] and result.unpaired == ["orphan"] and result.ok
    assert result.cases["A"]["WT"].lesionwise_dice == 1.0
    assert result.cases["D"]["WT"].lesionwise_dice == 0.0
    assert result.cases["D"]["ET"].lesionwise_hd95 == 374.0
    means = result.means()
    assert means["WT"]["dice"] == pytest.approx(0.75)
    assert means["WT"]["case_detection_rate"] == pytest.approx(0.75)

    rows = list(csv.DictReader((tmp_path / "out" / "metrics.csv").open()))
    assert len(rows) == 4 * 3
    assert list(rows[0])[:10] == [
        "case",
        "region",
        "lesionwise_dice",
        "lesionwise_hd95",
        "dice",
        "hd95",
        "n_ref_lesions",
        "n_fp",
        "lesions_detected",
        "case_detected",
    ]
    report = json.loads(
        (tmp_path / "out" / "metrics.json").read_text(),
        parse_constant=lambda c: pytest.fail(f"metrics.json is not strict JSON: {c}"),
    )
    assert [les["kept"] for les in report["cases"]["C"]["regions"]["WT"]["lesions"]] == [
        True,
        False,
    ]
    assert result.cases["C"]["WT"].n_fp == 0
    assert report["missing"] == ["D"] and report["cases"]["D"]["prediction_missing"]
    assert report["mean"]["ET"]["lesionwise_dice"] == pytest.approx(0.75)
    assert "D" in result.table() and "orphan" in result.table()


def test_geometry_mismatch_fails_that_case_only(tmp_path: Path) -> None:
    lesion = tumour((20, 20, 20))
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    save(lesion, ref / "ok-seg.nii.gz")
    save(lesion, pred / "ok.nii.gz")
    save(lesion, ref / "shape-seg.nii.gz")
    save(lesion[:, :, :-1], pred / "shape.nii.gz")
    save(lesion, ref / "affine-seg.nii.gz")
    save(lesion, pred / "affine.nii.gz", affine=np.diag([-1.0, -1.0, 1.0, 1.0]))
    result = evaluate_folder(pred, ref)
    assert list(result.cases) == ["ok"] and not result.ok
    assert "shape mismatch" in result.failed["shape"]
    assert "affine mismatch" in result.failed["affine"]

    runner = CliRunner()
    out = runner.invoke(evaluate, [str(pred), str(ref)])
    assert out.exit_code == 1, out.output
    assert "FAILED shape" in out.output


def test_cli(tmp_path: Path) -> None:
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    for case, (p, r) in scenarios().items():
        save(p, pred / f"{case}.nii.gz")
        save(r, ref / case / f"{case}-seg.nii.gz")
    runner = CliRunner()
    out = runner.invoke(
        evaluate, [str(pred), str(ref), "--cohort", "met", "-o", str(tmp_path / "o")]
    )
    assert out.exit_code == 0, out.output
    assert "LW-Dice" in out.output and "cohort met" in out.output
    assert (tmp_path / "o" / "metrics.json").is_file() and not (pred / "metrics.json").exists()
    out = runner.invoke(evaluate, [str(pred), str(ref), "--quiet"])
    assert out.exit_code == 0 and out.output == ""
    assert (pred / "metrics.csv").is_file()  # default output: PRED_DIR
    # usage errors: missing folder, nothing to pair, unknown cohort
    assert runner.invoke(evaluate, [str(tmp_path / "nope"), str(ref)]).exit_code == 2
    (tmp_path / "empty").mkdir()
    out = runner.invoke(evaluate, [str(tmp_path / "empty"), str(ref)])
    assert out.exit_code == 2 and "no prediction" in out.output
    assert runner.invoke(evaluate, [str(pred), str(ref), "--cohort", "xyz"]).exit_code == 2
    with pytest.raises(EvaluationUsageError):
        evaluate_folder(pred, tmp_path / "empty")


# ---------------------------------------------------------------- official cross-check


@pytest.fixture(scope="module")
def official_python() -> str:
    default = ROOT / ".venv-eval" / "bin" / "python"
    python = os.environ.get("BRATS_EVAL_PYTHON", str(default))
    reason = (
        f"brats-evaluation not importable with {python} (create it: python3 -m venv .venv-eval "
        "&& .venv-eval/bin/pip install brats-evaluation==0.0.10, or set BRATS_EVAL_PYTHON)"
    )
    if not Path(python).exists():
        pytest.skip(reason)
    probe = subprocess.run(
        [python, "-c", "import brats_evaluation, panoptica"], capture_output=True, timeout=120
    )
    if probe.returncode:
        pytest.skip(reason)
    return python


def run_official(python: str, pairs: dict[str, tuple[Path, Path]]) -> dict:
    args = [str(v) for case, (p, r) in pairs.items() for v in (case, p, r)]
    proc = subprocess.run(
        [python, str(DRIVER), "--config", "GoAT", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_matches_official_brats_evaluation(tmp_path: Path, official_python: str) -> None:
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    pairs = {}
    cases = scenarios()
    for case, (p, r) in cases.items():
        pairs[case] = (
            save(p, pred_dir / f"{case}.nii.gz"),
            save(r, ref_dir / f"{case}-seg.nii.gz"),
        )
    official = run_official(official_python, pairs)
    ours = evaluate_folder(pred_dir, ref_dir, "goat", tmp_path / "ours", rules=OFFICIAL_RULES)
    assert ours.ok and not ours.missing

    lines, compared = [], 0
    for case, (p, r) in cases.items():
        assert "error" not in official[case], official[case]
        for region, mine in ours.cases[case].items():
            theirs = official[case][region.lower()]
            raw, mets, seg = theirs["raw"], theirs["mets"], theirs["seg"]
            has_ref = bool(region_mask(r, region).any())
            has_pred = bool(region_mask(p, region).any())
            lines.append(
                f"{case:15s} {region}: LW-Dice {mine.lesionwise_dice:.6f}/"
                f"{mets['lesionwise_dsc_mean']:.6f} LW-HD95 {mine.lesionwise_hd95:.4f}/"
                f"{mets['lesionwise_hd95_mean']:.4f} Dice {mine.dice:.6f}/{mets['global_dsc']:.6f}"
                f" HD95 {mine.hd95:.4f}/{mets['global_hd95']:.4f}"
            )
            # Same lesions, same false positives.
            assert mine.n_ref_lesions == raw["n_ref_instances"]
            assert mine.n_fp == raw["fp"]
            assert mine.lesions_detected == raw["tp"]
            if has_ref:
                # mets summary: misses and false positives charged (0 / 373).
                assert mine.lesionwise_dice == pytest.approx(mets["lesionwise_dsc_mean"], abs=1e-6)
                assert mine.lesionwise_hd95 == pytest.approx(mets["lesionwise_hd95_mean"], abs=1e-3)
                # seg summary: mean over matched lesions only.
                matched = [les.dice for les in mine.lesions if les.kept and les.hits]
                if matched:
                    assert np.mean(matched) == pytest.approx(seg["lesionwise_dsc_mean"], abs=1e-6)
                compared += 1
            else:  # no reference lesion: official lesion-wise summary is undefined
                assert np.isnan(mets["lesionwise_dsc_mean"])
                expected = (1.0, 0.0) if not has_pred else (0.0, 373.0)
                assert (mine.lesionwise_dice, mine.lesionwise_hd95) == expected
            if has_ref or has_pred:
                assert mine.dice == pytest.approx(mets["global_dsc"], abs=1e-6)
                assert mine.hd95 == pytest.approx(mets["global_hd95"], abs=1e-3)
            else:  # known difference: BraTS 2023 scores empty/empty 1 / 0, panoptica NaN
                assert (mine.dice, mine.hd95) == (1.0, 0.0)
                assert np.isnan(mets["global_dsc"]) and np.isnan(mets["global_hd95"])
    print("\nours/official (GoAT config, penalty 373)\n" + "\n".join(lines), file=sys.stderr)
    assert compared >= 12
