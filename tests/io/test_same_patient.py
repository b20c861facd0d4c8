"""Another patient's sequence under a case's name is warned about (issue 27): its fine
anatomy lines up with the case's other sequences no better than their mirror image."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from brats_goat.io.consistency import check_mirrored
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case
from brats_goat.io.same_patient import SAME_SCAN_DROP, mirror_drops, other_patient_warnings
from tests.conftest import REAL_DATA

SHAPE = (48, 56, 40)
#: Contrast of each sequence against the anatomy (T1 and T2 weightings reverse it).
CONTRAST = {"t1n": 1.0, "t1c": 0.8, "t2w": -1.0, "t2f": -0.7}


def scan(seed: int, names: tuple[str, ...] = tuple(CONTRAST)) -> dict[str, np.ndarray]:
    """One patient's sequences: a brain with its own fine texture (sulci, vessels: a
    smoothed random field), each sequence a contrast of it with a little noise."""
    rng = np.random.default_rng(seed)
    grid = np.indices(SHAPE, dtype=np.float32)
    centre = (np.array(SHAPE) - 1) / 2
    radii = np.array(SHAPE) * 0.42
    brain = (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) <= 1
    anatomy = ndimage.gaussian_filter(rng.normal(size=SHAPE), 1.5).astype(np.float32)
    anatomy /= anatomy.std()
    return {
        name: np.where(
            brain, 500 + 100 * CONTRAST[name] * anatomy + rng.normal(0, 10, SHAPE), 0
        ).astype(np.float32)
        for name in names
    }


def files(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    return {m: f"P-{m}.nii.gz" for m in arrays}


def test_a_scans_own_sequences_are_not_warned() -> None:
    arrays = scan(0)
    assert min(mirror_drops(arrays).values()) > SAME_SCAN_DROP
    assert other_patient_warnings("P", arrays, files(arrays)) == []


def test_another_patients_sequence_is_named() -> None:
    arrays = scan(0) | {"t2f": scan(1)["t2f"]}
    (warning,) = other_patient_warnings("P", arrays, files(arrays))
    assert "t2f file P-t2f.nii.gz" in warning and "another patient's" in warning
    assert "t1c file" not in warning and "check the files" in warning


def test_with_two_sequences_both_are_named() -> None:
    arrays = scan(0, ("t1c", "t2f")) | {"t1c": scan(2, ("t1c",))["t1c"]}
    (warning,) = other_patient_warnings("P", arrays, files(arrays))
    assert "t1c file" in warning and "t2f file" in warning and "one of them" in warning


def test_one_sequence_has_nothing_to_compare_with() -> None:
    assert other_patient_warnings("P", scan(0, ("t2f",)), {"t2f": "f"}) == []


@pytest.mark.slow
@pytest.mark.real
def test_another_real_patients_t2f_is_warned_through_the_reader(tmp_path: Path) -> None:
    """Brats18_TCIA02_135_1 with Brats18_TCIA02_370_1's t2f under its own name (the
    probe's case: status ok, WT Dice 0, and no word of it)."""
    dev = REAL_DATA.parent / "brats18-dev"
    if not dev.is_dir():
        pytest.skip(f"real data not present: {dev}")
    case = tmp_path / "Brats18_TCIA02_135_1"
    shutil.copytree(dev / case.name, case)
    (own,) = discover_cases(case)
    assert not [w for w in load_case(own).warnings if "another patient" in w]
    shutil.copy(
        dev / "Brats18_TCIA02_370_1" / "Brats18_TCIA02_370_1-t2f.nii.gz",
        case / "Brats18_TCIA02_135_1-t2f.nii.gz",
    )
    (swapped,) = discover_cases(case)
    (warning,) = [w for w in load_case(swapped).warnings if "another patient" in w]
    assert "t2f file" in warning and "t1c file" not in warning


@pytest.mark.parametrize("value", [1e7, 3e38])
def test_a_hot_voxel_is_no_sign_of_another_patient_or_a_mirror(value: float) -> None:
    """One voxel at 1e7 owned the edge correlation (and 3e38 overflowed its squares): the
    sequence read as another patient's, and the case failed as 'mirrored'. Edges are
    compared on intensities clipped to the brain's 0.5-99.5th percentiles."""
    arrays = scan(0)
    t2f = arrays["t2f"].copy()
    t2f[24, 28, 20] = value
    arrays["t2f"] = t2f
    assert other_patient_warnings("P", arrays, files(arrays)) == []
    assert check_mirrored("P", arrays, files(arrays)) == {}
