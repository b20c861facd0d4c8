"""Input intensities (issue 17, item 3): a background that is not 0 is found and
subtracted, or the case fails naming the file and what was seen; never a quiet "ok".

Each test writes a tiny case (``tests.conftest.write_case``) and rewrites one or all of its
modality files the way a user's data arrives broken.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats_goat.conventions import MODALITIES
from brats_goat.io.discover import discover_cases
from brats_goat.io.intensity import BACKGROUND_MIN_SHARE, border_values
from brats_goat.io.read import CaseError, CaseVolumes, load_case
from tests.conftest import write_case

#: Byte offsets of ``scl_slope`` and ``scl_inter`` (float32) in a NIfTI-1 header.
SCL_SLOPE, SCL_INTER = 112, 116


def set_scaling(path: Path, slope: float, inter: float) -> None:
    """Patch the header's ``scl_slope``/``scl_inter`` in place, keeping the stored voxels
    (nibabel would rescale the data to fit the header on a plain save)."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[SCL_SLOPE : SCL_INTER + 4] = struct.pack("<ff", slope, inter)
    path.write_bytes(gzip.compress(bytes(raw)))


def rewrite(path: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Store ``change(voxels)`` as float32 in ``path``, with the same affine."""
    image = nib.load(path)
    data = change(np.asarray(image.get_fdata(), np.float64)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, image.affine), path)


def case_files(folder: Path) -> dict[str, Path]:
    (case,) = discover_cases(folder)
    return case.files


def load(folder: Path) -> CaseVolumes:
    (case,) = discover_cases(folder)
    return load_case(case)


def error(folder: Path) -> str:
    with pytest.raises(CaseError) as info:
        load(folder)
    return str(info.value)


def same_arrays(a: CaseVolumes, b: CaseVolumes, atol: float = 0.0) -> None:
    for modality in MODALITIES:
        np.testing.assert_allclose(a.arrays[modality], b.arrays[modality], atol=atol, rtol=0)


def test_bratslike_case_is_read_unchanged_and_quiet(tmp_path: Path) -> None:
    volumes = load(write_case(tmp_path, "CLEAN-1"))
    assert volumes.warnings == []
    assert min(a.min() for a in volumes.arrays.values()) == 0


def test_header_offset_background_is_subtracted_with_a_warning(tmp_path: Path) -> None:
    """scl_inter = -1000: the background reads as -1000 and used to give all-zero labels."""
    clean = load(write_case(tmp_path / "a", "OFF-1"))
    folder = write_case(tmp_path / "b", "OFF-1")
    for path in case_files(folder).values():
        set_scaling(path, 1.0, -1000.0)
    assert np.asarray(nib.load(case_files(folder)["t2f"]).dataobj).min() == -1000
    shifted = load(folder)
    same_arrays(shifted, clean)
    t2f = case_files(folder)["t2f"]
    assert any(str(t2f) in w and "background is -1000, not 0" in w for w in shifted.warnings)


def test_volume_zscored_over_its_field_of_view_is_recovered(tmp_path: Path) -> None:
    """Already z-scored data: the background is one negative value, and the whole volume
    used to be taken as brain. Shifting it back gives the image up to a scale."""
    clean = load(write_case(tmp_path / "a", "Z-1"))
    folder = write_case(tmp_path / "b", "Z-1")
    for path in case_files(folder).values():
        rewrite(path, lambda x: (x - x.mean()) / x.std())
    volumes = load(folder)
    assert len(volumes.warnings) == 4 and all("not 0" in w for w in volumes.warnings)
    for modality in MODALITIES:
        got, want = volumes.arrays[modality], clean.arrays[modality]
        np.testing.assert_array_equal(got != 0, want != 0)
        scale = want[want != 0].mean() / got[got != 0].mean()
        np.testing.assert_allclose(got * scale, want, rtol=1e-4, atol=1e-2)


def test_brain_zscored_inside_a_zero_background_is_used_with_a_warning(tmp_path: Path) -> None:
    folder = write_case(tmp_path, "ZB-1")

    def zscore_brain(x: np.ndarray) -> np.ndarray:
        brain = x != 0
        x[brain] = (x[brain] - x[brain].mean()) / x[brain].std()
        return x

    rewrite(case_files(folder)["t1n"], zscore_brain)
    volumes = load(folder)
    assert any("t1n" in w and "looks already normalised" in w for w in volumes.warnings)


def test_negated_image_fails_naming_the_file(tmp_path: Path) -> None:
    folder = write_case(tmp_path, "NEG-1")
    rewrite(case_files(folder)["t1c"], lambda x: -x)
    msg = error(folder)
    assert str(case_files(folder)["t1c"]) in msg
    assert "100% of the brain is darker than the background" in msg and "negated" in msg


def test_negated_image_with_an_offset_fails_too(tmp_path: Path) -> None:
    folder = write_case(tmp_path, "NEG-2")
    rewrite(case_files(folder)["t2f"], lambda x: 4000 - x)
    msg = error(folder)
    assert "background is" not in msg and "negated" in msg and "NEG-2-t2f" in msg


@pytest.mark.parametrize(("levels", "named"), [(1, "the same intensity (700)"), (3, "only 3")])
def test_constant_brain_or_label_map_fails_naming_the_file(
    tmp_path: Path, levels: int, named: str
) -> None:
    """A constant brain (or a mask, a label map under a modality's name) used to pass as ok."""
    folder = write_case(tmp_path, "CONST-1")

    def quantise(x: np.ndarray) -> np.ndarray:
        level = np.minimum(np.digitize(x, [520, 560]), levels - 1)
        return np.where(x != 0, 700 + level, 0)

    rewrite(case_files(folder)["t2w"], quantise)
    msg = error(folder)
    assert str(case_files(folder)["t2w"]) in msg and named in msg and "not an MR scan" in msg


def test_constant_volume_is_empty(tmp_path: Path) -> None:
    folder = write_case(tmp_path, "FLAT-1")
    rewrite(case_files(folder)["t1n"], lambda x: np.full_like(x, 42.0))
    msg = error(folder)
    assert "FLAT-1-t1n" in msg and "the value 42 in every voxel (empty volume)" in msg


def test_no_constant_background_fails(tmp_path: Path) -> None:
    """An unstripped head, or noise: no value dominates the border, so the brain cannot be
    told from the background."""
    folder = write_case(tmp_path, "NOISE-1")
    rng = np.random.default_rng(0)
    rewrite(case_files(folder)["t2f"], lambda x: x + rng.uniform(1, 50, x.shape))
    msg = error(folder)
    assert "NOISE-1-t2f" in msg and "has no constant background" in msg
    assert f"at least {BACKGROUND_MIN_SHARE:.0%} needed" in msg


def test_nan_voxels_take_the_background_value(tmp_path: Path) -> None:
    """A NaN in a volume with an offset background must end up as background, not brain."""
    folder = write_case(tmp_path, "NANOFF-1")

    def offset_with_nan(x: np.ndarray) -> np.ndarray:
        x = x - 1000
        x[0, 0, 0] = np.nan
        return x

    rewrite(case_files(folder)["t2f"], offset_with_nan)
    volumes = load(folder)
    assert volumes.arrays["t2f"].min() == 0 and np.isfinite(volumes.arrays["t2f"]).all()
    assert any("1 NaN/Inf voxels set to 0" in w for w in volumes.warnings)


def test_border_values_are_the_six_faces() -> None:
    data = np.zeros((16, 17, 18), np.float32)
    data[1:-1, 1:-1, 1:-1] = 1
    assert not border_values(data).any()
    data[5, 0, 5] = 2
    assert 2 in border_values(data)
