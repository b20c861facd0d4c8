"""t1c and t2f swapped (issue 27): the sequence check warns, and stays quiet on real scans."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case
from brats_goat.io.sequences import SWAP_MARGIN, swap_score
from tests.conftest import write_case

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def contrasts(shape: tuple[int, int, int] = (48, 48, 20)) -> dict[str, np.ndarray]:
    """Four images of one tissue pattern with the sequences' signs: the T1-weighted pair
    alike, FLAIR closer to T2w than to T1 (fluid dark on FLAIR, bright on T2w)."""
    rng = np.random.default_rng(0)
    tissue = rng.normal(size=shape)
    fluid = rng.normal(size=shape)
    noise = {m: 0.3 * rng.normal(size=shape) for m in ("t1n", "t1c", "t2w", "t2f")}
    images = {
        "t1n": 500 + 100 * (tissue - fluid + noise["t1n"]),
        "t1c": 500 + 100 * (tissue - fluid + noise["t1c"]),
        "t2w": 500 + 100 * (-tissue + fluid + noise["t2w"]),
        "t2f": 500 + 100 * (-tissue - fluid + noise["t2f"]),
    }
    return {m: np.clip(v, 1, None).astype(np.float32) for m, v in images.items()}


def test_the_score_reverses_when_t1c_and_t2f_are_exchanged() -> None:
    images = contrasts()
    right = swap_score(images)
    wrong = swap_score({**images, "t1c": images["t2f"], "t2f": images["t1c"]})
    assert right is not None and wrong is not None
    assert right > 1.0 and wrong < SWAP_MARGIN and abs(right + wrong) < 1e-6
    # Without all four sequences there is nothing to compare with.
    assert swap_score({m: v for m, v in images.items() if m != "t2w"}) is None


def test_a_case_read_with_t1c_and_t2f_swapped_is_warned_naming_both(tmp_path: Path) -> None:
    folder = write_case(tmp_path, "S-1")
    images = contrasts()
    names = {"t1c": "t2f", "t2f": "t1c", "t1n": "t1n", "t2w": "t2w"}
    for modality, source in names.items():
        path = folder / f"S-1-{modality}.nii.gz"
        image = nib.load(path)
        brain = np.asarray(image.dataobj) != 0  # the phantom's skull-stripped brain
        data = np.where(brain, images[source], 0).astype(np.float32)
        nib.save(nib.Nifti1Image(data, image.affine, image.header), path)
    warnings = load_case(discover_cases(folder)[0]).warnings
    (swapped,) = [w for w in warnings if "look swapped" in w]
    assert str(folder / "S-1-t1c.nii.gz") in swapped and str(folder / "S-1-t2f.nii.gz") in swapped


@pytest.mark.slow
def test_real_cases_are_not_warned_and_their_swapped_copies_are(tmp_path: Path) -> None:
    case_dir = REAL / "real" / "BrainLes-example"
    if not case_dir.is_dir():
        pytest.skip(f"{case_dir} is absent (real data lives outside the repository)")
    assert not [w for w in load_case(discover_cases(case_dir)[0]).warnings if "swapped" in w]
    copy = tmp_path / "BrainLes-example"
    shutil.copytree(case_dir, copy)
    t1c, t2f = copy / "BrainLes-example-t1c.nii.gz", copy / "BrainLes-example-t2f.nii.gz"
    t1c.rename(tmp_path / "t1c"), t2f.rename(t1c), (tmp_path / "t1c").rename(t2f)
    assert [w for w in load_case(discover_cases(copy)[0]).warnings if "look swapped" in w]
