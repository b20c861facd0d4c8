"""Healthy-tissue levels for the label-free thresholds (``calibration.healthy_levels``), read
from real NIfTI phantoms the tests write."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats_goat.calibration.healthy_levels import healthy_pool
from brats_goat.conventions import MODALITIES
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case
from brats_goat.segmenter import intensity_baseline
from brats_goat.stages.anomaly import analysis_mask, median3_inplane
from brats_goat.stages.normalise import NormaliseConfig, normalise_case
from tests.conftest import write_case


def test_values_are_the_pipelines_view_of_the_brain_without_known_lesions(tmp_path: Path) -> None:
    for case_id, skip in (("H-1", ()), ("H-2", ("t1c",))):
        write_case(tmp_path, case_id, lesion=False, skip=skip)
        (tmp_path / case_id / f"{case_id}-seg.nii.gz").unlink()  # healthy: no tumour map
    t2f = nib.load(tmp_path / "H-1" / "H-1-t2f.nii.gz")
    lesion = np.zeros(t2f.shape, dtype=np.uint8)
    lesion[20:28, 20:28, 8:12] = 1
    nib.save(nib.Nifti1Image(lesion, t2f.affine), tmp_path / "H-1" / "H-1-lesion.nii.gz")

    pool = healthy_pool(tmp_path, "t1c")
    assert list(pool) == ["H-1"]  # H-2 has no t1c
    (case,) = discover_cases(tmp_path / "H-1")
    volumes = load_case(case)
    normalised, brain, _ = normalise_case(volumes.stack(MODALITIES), NormaliseConfig())
    mask = analysis_mask(brain, intensity_baseline().brain_erosion)
    assert (mask & (volumes.from_stored(lesion) > 0)).any()  # the lesion is in the brain
    mask &= volumes.from_stored(lesion) == 0
    expected = median3_inplane(normalised[MODALITIES.index("t1c")])[mask]
    np.testing.assert_array_equal(pool["H-1"], expected)
    assert set(healthy_pool(tmp_path, "t2w")) == {"H-1", "H-2"}


def test_no_subject_with_the_sequence_is_an_error_naming_it(tmp_path: Path) -> None:
    write_case(tmp_path, "H-2", skip=("t1c",))
    with pytest.raises(SystemExit, match="no subject with a t1c"):
        healthy_pool(tmp_path, "t1c")
