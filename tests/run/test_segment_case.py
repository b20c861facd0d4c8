"""One way in (issue 28): ``segment_case``, the per-case path ``predict`` runs, gives in
memory the labels ``predict`` writes, on cases the old library route (``load_case`` then
``Segmenter.segment``) got wrong: a case off the model's grid (it was segmented on its own
grid, or its labels came back on the 1 mm frame) and a case with a missing and a corrupt
sequence (``load_case`` refused it)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats_goat import make_segmenter, predict, segment_case
from brats_goat.io.read import CaseError
from tests.conftest import write_case

#: 2 mm slices: off the model's 1 mm grid, so the case is resampled to a frame and back.
THICK = np.diag([-1.0, -1.0, 2.0, 1.0])


def odd_cases(root: Path) -> None:
    """A thick-slice case, and a case without t1n whose t2w cannot be decoded."""
    write_case(root, "THICK-1", affine=THICK)
    partial = write_case(root, "PART-2", skip=("t1n",), seed=1)
    (partial / "PART-2-t2w.nii.gz").write_bytes(b"not a nifti")


@pytest.mark.parametrize("method", ["mvitae", "intensity"])
def test_in_memory_labels_are_those_predict_writes(
    tmp_path: Path, tiny_weights: Path, method: str
) -> None:
    odd_cases(tmp_path / "in")
    weights = tiny_weights if method == "mvitae" else None
    report = predict(tmp_path / "in", tmp_path / "out", method=method, weights=weights, quiet=True)
    assert [c.status for c in report.cases] == ["ok", "ok"], [c.error for c in report.cases]
    partial, thick = report.cases  # in the order of their IDs
    assert thick.resampled is not None and thick.resampled["to"]["spacing_mm"] == [1.0] * 3
    assert partial.modalities == ["t1c", "t2f"]
    segmenter = make_segmenter(method, weights)
    for case in report.cases:
        done = segment_case(case.input, segmenter)
        written = np.asarray(nib.load(case.output).dataobj)
        assert done.labels.shape == nib.load(Path(case.input) / f"{case.case_id}-t1c.nii.gz").shape
        np.testing.assert_array_equal(done.labels, written)
        assert done.warnings == case.warnings
    if method == "intensity":  # the tiny network's labels may be empty; the baseline's not
        assert all(case.voxels_per_label for case in report.cases)


def test_a_folder_of_several_cases_is_not_one_case(tmp_path: Path) -> None:
    odd_cases(tmp_path / "in")
    with pytest.raises(CaseError, match="holds 2 cases, not one"):
        segment_case(tmp_path / "in", make_segmenter("intensity"))
