"""`brats-goat predict` on inputs with hostile intensities (issue 17, items 3 and 4): the
labels hold against outliers and offsets, and what cannot be segmented fails its case
naming the file and the cause, never a quiet "ok" with garbage labels.

The intensity method (no weights) keeps these runs fast; the normalisation it goes through
is the one the MViT-AE gets.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from brats_goat.cli.main import main
from brats_goat.segmenter import IntensitySegmenter
from tests.conftest import write_case
from tests.io.test_intensity import case_files, rewrite, set_scaling

INTENSITY = ("--method", "intensity", "--refine", "none", "--quiet")


def predict(inp: Path, out: Path):
    args = ["predict", str(inp), str(out), *INTENSITY]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def cases(out: Path) -> dict[str, dict]:
    return {c["case_id"]: c for c in json.loads((out / "report.json").read_text())["cases"]}


def whole_tumour(out: Path, case_id: str) -> np.ndarray:
    return np.asarray(nib.load(out / f"{case_id}.nii.gz").dataobj) > 0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(int(a.sum() + b.sum()), 1)


@pytest.fixture
def clean(tmp_path: Path) -> np.ndarray:
    """Whole-tumour labels of the untouched case ``C-1`` (float32 voxels, so that any value
    can be written into a copy)."""
    write_case(tmp_path / "clean", "C-1", dtype=np.float32)
    assert predict(tmp_path / "clean", tmp_path / "clean-out").exit_code == 0
    labels = whole_tumour(tmp_path / "clean-out", "C-1")
    assert labels.sum() > 100, "the synthetic lesion is found on the clean case"
    return labels


def broken_case(tmp_path: Path, change) -> Path:
    """``C-1`` again under ``tmp_path/in``, with ``change(folder)`` applied."""
    folder = write_case(tmp_path / "in", "C-1", dtype=np.float32)
    change(folder)
    return tmp_path / "in"


def healthy_flair_voxels(folder: Path, n: int) -> tuple[np.ndarray, ...]:
    """``n`` brain voxels outside the lesion, spread over the brain."""
    flair = np.asarray(nib.load(case_files(folder)["t2f"]).dataobj)
    lesion = np.asarray(nib.load(folder / "C-1-seg.nii.gz").dataobj) > 0
    xs, ys, zs = np.nonzero((flair != 0) & ~lesion)
    pick = np.linspace(0, xs.size - 1, n).astype(int)
    return xs[pick], ys[pick], zs[pick]


@pytest.mark.parametrize(("value", "n"), [(1e9, 20), (3e38, 1)], ids=["20x1e9", "1x3e38"])
def test_flair_spikes_do_not_erase_the_lesion(
    tmp_path: Path, clean: np.ndarray, value: float, n: int
) -> None:
    """20 spikes of 1e9 used to give exit 0 and "no anomaly found"; a voxel of 3e38 ended
    in "autodetected range of [nan, nan] is not finite", naming neither file nor cause."""

    def spike(folder: Path) -> None:
        where = healthy_flair_voxels(folder, n)

        def add(x: np.ndarray) -> np.ndarray:
            x[where] = value
            return x

        rewrite(case_files(folder)["t2f"], add)

    inp = broken_case(tmp_path, spike)
    result = predict(inp, tmp_path / "out")
    assert result.exit_code == 0, result.output
    case = cases(tmp_path / "out")["C-1"]
    assert case["status"] == "ok" and "no anomaly found" not in " ".join(case["warnings"])
    assert dice(whole_tumour(tmp_path / "out", "C-1"), clean) >= 0.95


def test_header_offset_gives_the_same_labels_and_says_so(tmp_path: Path, clean: np.ndarray) -> None:
    """scl_inter = -1000 in every header used to give all-zero labels with exit 0."""

    def offset(folder: Path) -> None:
        for path in case_files(folder).values():
            set_scaling(path, 1.0, -1000.0)

    inp = broken_case(tmp_path, offset)
    assert predict(inp, tmp_path / "out").exit_code == 0
    np.testing.assert_array_equal(whole_tumour(tmp_path / "out", "C-1"), clean)
    warnings = cases(tmp_path / "out")["C-1"]["warnings"]
    assert sum("background is -1000, not 0" in w for w in warnings) == 4


@pytest.mark.parametrize("scale", [1e-30, 1e-40])
def test_tiny_intensities_give_the_same_labels(
    tmp_path: Path, clean: np.ndarray, scale: float
) -> None:
    """Every image scaled by 1e-30 gave an empty map "ok" (issue 27): its float32 variance
    underflowed to 0. The z-score does not depend on a positive scale, and no longer does."""

    def shrink(folder: Path) -> None:
        for path in case_files(folder).values():
            rewrite(path, lambda voxels: voxels * scale)

    inp = broken_case(tmp_path, shrink)
    assert predict(inp, tmp_path / "out").exit_code == 0
    assert dice(whole_tumour(tmp_path / "out", "C-1"), clean) > 0.95
    assert not any("no anomaly" in w for w in cases(tmp_path / "out")["C-1"]["warnings"])


def test_volume_zscored_over_its_field_of_view_gives_the_same_labels(
    tmp_path: Path, clean: np.ndarray
) -> None:
    """Data already z-scored over the whole volume (a negative background) used to be all
    brain, with ET over the whole volume."""

    def zscore(folder: Path) -> None:
        for path in case_files(folder).values():
            rewrite(path, lambda x: (x - x.mean()) / x.std())

    inp = broken_case(tmp_path, zscore)
    assert predict(inp, tmp_path / "out").exit_code == 0
    assert dice(whole_tumour(tmp_path / "out", "C-1"), clean) >= 0.99


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda x: -x, "is darker than the background"),
        (lambda x: np.where(x != 0, 700.0, 0.0), "has the same intensity (700)"),
    ],
    ids=["negated", "constant-brain"],
)
def test_image_that_is_no_scan_fails_its_case_alone(tmp_path: Path, change, named: str) -> None:
    """Negated intensities and a constant brain used to pass as "ok"."""
    write_case(tmp_path / "in", "GOOD-1")
    bad = write_case(tmp_path / "in", "BAD-2")
    rewrite(case_files(bad)["t1c"], change)
    result = predict(tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 1
    report = cases(tmp_path / "out")
    assert report["GOOD-1"]["status"] == "ok" and report["BAD-2"]["status"] == "failed"
    assert str(case_files(bad)["t1c"]) in report["BAD-2"]["error"]
    assert named in report["BAD-2"]["error"]
    assert not (tmp_path / "out" / "BAD-2.nii.gz").exists()


def test_non_finite_stage_result_names_the_file_and_the_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stage that produces NaN (a model or device failure) fails the case with its file
    and the stage named, instead of an error from a histogram three stages later."""
    folder = write_case(tmp_path / "in", "N-1")
    monkeypatch.setattr(
        IntensitySegmenter, "reconstruct", lambda self, z, brain, present: np.full_like(z, np.nan)
    )
    assert predict(tmp_path / "in", tmp_path / "out").exit_code == 1
    error = cases(tmp_path / "out")["N-1"]["error"]
    assert str(case_files(folder)["t1c"]) in error
    assert "the reconstruction has" in error and "NaN/Inf voxels" in error
