from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats_goat.io.discover import discover_cases
from brats_goat.io.image import MIN_VOXELS_PER_AXIS
from brats_goat.io.read import CaseError, load_case
from tests.conftest import load_error, write_case
from tests.unprivileged import requires_file_modes, run_unprivileged

RAS = np.diag([1.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64, np.uint8])
def test_any_dtype_reads_as_float32(case_writer, dtype) -> None:
    (case,) = discover_cases(case_writer("D-1", dtype=dtype))
    vols = load_case(case)
    assert all(a.dtype == np.float32 for a in vols.arrays.values())
    assert vols.arrays["t2f"].max() > 0


def test_ras_case_is_reoriented_and_back(case_writer, tmp_path: Path) -> None:
    (lps,) = discover_cases(case_writer("LPS-1"))
    ras_dir = tmp_path / "ras" / "RAS-1"
    ras_dir.mkdir(parents=True)
    for modality, path in lps.files.items():
        img = nib.load(path)
        data = np.asarray(img.dataobj)[::-1, ::-1]  # same anatomy, stored RAS
        nib.save(nib.Nifti1Image(data, RAS), ras_dir / f"RAS-1-{modality}.nii.gz")
    (ras,) = discover_cases(ras_dir)
    a, b = load_case(lps), load_case(ras)
    for m in a.arrays:
        np.testing.assert_array_equal(a.arrays[m], b.arrays[m])
    stored = b.to_stored(b.arrays["t1c"])
    np.testing.assert_array_equal(stored, np.asarray(nib.load(ras.files["t1c"]).dataobj))


def test_missing_modality(case_writer) -> None:
    msg = load_error(case_writer("M-1", skip=("t1c",)))
    assert "M-1" in msg and "missing modality t1c" in msg


def test_missing_modalities_allowed_for_inference(case_writer) -> None:
    (case,) = discover_cases(case_writer("M-2", skip=("t1n", "t2w")))
    volumes = load_case(case, allow_missing=True)
    assert volumes.present == ("t1c", "t2f")
    stack = volumes.stack()
    assert stack.shape[0] == 4 and not stack[1].any() and not stack[3].any()
    assert any("segmented from t1c, t2f" in w for w in volumes.warnings)
    (case,) = discover_cases(case_writer("M-3", skip=("t1c", "t2f")))
    with pytest.raises(CaseError, match="needs t2f or t1c"):
        load_case(case, allow_missing=True)


def test_different_grids(case_writer) -> None:
    folder = case_writer("G-1")
    shifted = nib.load(folder / "G-1-t2w.nii.gz")
    aff = shifted.affine.copy()
    aff[0, 3] += 5
    nib.save(nib.Nifti1Image(np.asarray(shifted.dataobj), aff), folder / "G-1-t2w.nii.gz")
    msg = load_error(folder)
    assert "G-1" in msg and "G-1-t2w.nii.gz" in msg and "different grid" in msg


def test_different_shapes(case_writer) -> None:
    folder = case_writer("S-1")
    img = nib.load(folder / "S-1-t1n.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:-2], img.affine), folder / "S-1-t1n.nii.gz")
    assert "different grid" in load_error(folder)


def test_truncated_gzip(case_writer) -> None:
    folder = case_writer("T-1")
    path = folder / "T-1-t2f.nii.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    msg = load_error(folder)
    assert "T-1" in msg and "T-1-t2f.nii.gz" in msg


def truncate(folder: Path, *modalities: str) -> list[str]:
    """Cut each named modality file of ``folder``'s case to half its bytes; their names."""
    names = []
    for modality in modalities:
        path = folder / f"{folder.name}-{modality}.nii.gz"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        names.append(path.name)
    return names


def test_a_corrupt_file_is_left_out_like_a_missing_one(case_writer) -> None:
    """Issue 27: a truncated t2f failed the whole case. Where missing sequences are
    allowed and corrupt files skipped (predict), the case is read from its other files,
    with a warning naming the file; training and calibration still fail on it."""
    folder = case_writer("CUT-1")
    (name,) = truncate(folder, "t2f")
    (folder / "CUT-1-t1n.nii.gz").write_bytes(gzip.compress(b"<html>not found</html>"))
    (case,) = discover_cases(folder)
    volumes = load_case(case, allow_missing=True, skip_corrupt=True)
    assert volumes.present == ("t1c", "t2w") and set(volumes.files) == {"t1c", "t2w"}
    assert volumes.warnings[0] == "case CUT-1: no t1n, t2f; segmented from t1c, t2w only"
    named = [w for w in volumes.warnings if name in w and "truncated or corrupt" in w]
    assert len(named) == 1 and "segmented without it" in named[0], volumes.warnings
    assert any("CUT-1-t1n.nii.gz is not a readable NIfTI" in w for w in volumes.warnings)
    assert "CUT-1-t1n.nii.gz" in load_error(folder)  # without skip_corrupt: fails as before
    with pytest.raises(CaseError, match=r"CUT-1-t1n\.nii\.gz"):  # training, calibration
        load_case(case, allow_missing=True)


@pytest.mark.parametrize("broken", [("t1c", "t2f"), ("t1c", "t1n", "t2f", "t2w")])
def test_a_case_without_a_readable_t1c_or_t2f_still_fails(case_writer, broken) -> None:
    """Left without t1c and t2f (or with every file broken), the case fails naming each
    broken file and what to do."""
    folder = case_writer("CUT-2")
    names = truncate(folder, *broken)
    (case,) = discover_cases(folder)
    with pytest.raises(CaseError) as info:
        load_case(case, allow_missing=True, skip_corrupt=True)
    msg = str(info.value)
    assert all(name in msg for name in names) and "replace the file" in msg, msg


def test_not_nifti_named_nii_gz(case_writer) -> None:
    folder = case_writer("N-1")
    (folder / "N-1-t1n.nii.gz").write_bytes(gzip.compress(b"this is not an image" * 40))
    msg = load_error(folder)
    assert "N-1-t1n.nii.gz" in msg and "NIfTI" in msg


def test_plain_text_named_nii_gz(case_writer) -> None:
    folder = case_writer("P-1")
    (folder / "P-1-t1n.nii.gz").write_text("hello")
    assert "P-1-t1n.nii.gz" in load_error(folder)


def test_nan_and_inf_become_zero_with_warning(case_writer) -> None:
    folder = case_writer("NAN-1", dtype=np.float32)
    img = nib.load(folder / "NAN-1-t2w.nii.gz")
    data = np.asarray(img.dataobj).copy()
    data[10, 10, 5] = np.nan
    data[11, 10, 5] = np.inf
    nib.save(nib.Nifti1Image(data, img.affine, img.header), folder / "NAN-1-t2w.nii.gz")
    (case,) = discover_cases(folder)
    vols = load_case(case)
    assert np.isfinite(vols.arrays["t2w"]).all()
    assert any("2 NaN/Inf" in w and "NAN-1-t2w.nii.gz" in w for w in vols.warnings)


def test_all_nan_is_an_error(case_writer) -> None:
    folder = case_writer("AN-1", dtype=np.float32)
    img = nib.load(folder / "AN-1-t2w.nii.gz")
    data = np.full(img.shape, np.nan, dtype=np.float32)
    nib.save(nib.Nifti1Image(data, img.affine), folder / "AN-1-t2w.nii.gz")
    assert "only NaN" in load_error(folder)


def test_all_zero_volume(case_writer) -> None:
    folder = case_writer("Z-1")
    img = nib.load(folder / "Z-1-t1c.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.int16), img.affine), folder / "Z-1-t1c.nii.gz")
    msg = load_error(folder)
    assert "Z-1-t1c.nii.gz" in msg and "all zero" in msg


def test_4d_image_rejected_but_singleton_accepted(case_writer) -> None:
    folder = case_writer("F-1")
    img = nib.load(folder / "F-1-t1n.nii.gz")
    data = np.asarray(img.dataobj)
    nib.save(nib.Nifti1Image(data[..., None], img.affine), folder / "F-1-t1n.nii.gz")
    (case,) = discover_cases(folder)
    assert load_case(case).arrays["t1n"].shape == data.shape
    nib.save(nib.Nifti1Image(np.stack([data, data], -1), img.affine), folder / "F-1-t1n.nii.gz")
    msg = load_error(folder)
    assert "F-1-t1n.nii.gz" in msg and "3D" in msg


@pytest.mark.parametrize("shape", [(48, 48, 1), (10, 10, 10)], ids=["single-slice", "10-cube"])
def test_degenerate_volume_is_a_case_error(tmp_path: Path, shape) -> None:
    """Issue 17, item 13: a single slice and a 10x10x10 volume passed as "ok"."""
    folder = write_case(tmp_path / "in", "TINY-1", shape=shape)
    msg = load_error(folder)
    assert "TINY-1" in msg and "TINY-1-t1c.nii.gz" in msg and str(shape) in msg
    assert f"at least {MIN_VOXELS_PER_AXIS} voxels per axis" in msg


def test_smallest_accepted_volume_reads(tmp_path: Path) -> None:
    side = MIN_VOXELS_PER_AXIS
    (case,) = discover_cases(write_case(tmp_path / "in", "MIN-1", shape=(48, 48, side)))
    assert load_case(case).arrays["t1c"].shape == (48, 48, side)


@requires_file_modes
def test_unreadable_file_names_permission(case_writer) -> None:
    """Issue 17, item 10: it said "not a readable NIfTI image", with no word of permission."""
    folder = case_writer("PERM-1")
    path = folder / "PERM-1-t2w.nii.gz"
    path.chmod(0)
    code = (
        "import sys\n"
        "from brats_goat.io.discover import discover_cases\n"
        "from brats_goat.io.read import CaseError, load_case\n"
        "(case,) = discover_cases(sys.argv[1])\n"
        "try:\n    load_case(case)\nexcept CaseError as exc:\n    print(exc)\n"
    )
    try:
        result = run_unprivileged(["-c", code, str(folder)])
    finally:
        path.chmod(0o644)
    assert result.returncode == 0, result.stderr
    assert "PERM-1-t2w.nii.gz cannot be read: permission denied" in result.stdout


def _with_qform(path: Path, shift: float) -> None:
    image = nib.load(path)
    qform = image.affine.copy()
    qform[:3, 3] += shift
    moved = nib.Nifti1Image(np.asarray(image.dataobj), image.affine)
    moved.set_sform(image.affine, 1)
    moved.set_qform(qform, 1)
    path.unlink()
    nib.save(moved, path)


def test_qform_and_sform_that_disagree_are_warned_about(case_writer) -> None:
    """They passed without a word: nibabel uses the sform, ITK-based tools the qform."""
    folder = case_writer("Q-1")
    _with_qform(folder / "Q-1-t2f.nii.gz", 30.0)
    (case,) = discover_cases(folder)
    volumes = load_case(case)
    (warning,) = volumes.warnings
    assert "Q-1-t2f.nii.gz: its qform and sform disagree (largest difference 30)" in warning


def test_qform_rounding_is_not_warned_about(case_writer) -> None:
    folder = case_writer("Q-2")
    _with_qform(folder / "Q-2-t2f.nii.gz", 1e-5)
    (case,) = discover_cases(folder)
    assert load_case(case).warnings == []


@pytest.mark.parametrize(
    ("dtype", "message"),
    [(np.complex64, r"holds complex voxels \(complex64\)"), (np.complex128, "complex128")],
)
def test_complex_voxels_are_refused_from_the_header(case_writer, dtype, message) -> None:
    """nibabel casts them to their real part (a ComplexWarning only): garbage, exit 0."""
    folder = case_writer("X-1")
    path = folder / "X-1-t1c.nii.gz"
    image = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj).astype(dtype), image.affine), path)
    (case,) = discover_cases(folder)
    with pytest.raises(CaseError, match=message):
        load_case(case)


def test_header_claiming_too_many_voxels_is_refused_before_reading(case_writer) -> None:
    """A 4000^3 header on a tiny file ended in an "unexpected MemoryError"."""
    folder = case_writer("H-1")
    path = folder / "H-1-t2w.nii.gz"
    header = nib.load(path).header.copy()
    header.set_data_shape((4000, 4000, 4000))
    with gzip.open(path, "wb") as f:
        f.write(header.binaryblock + b"\0" * (int(header["vox_offset"]) - 348) + b"\0" * 20)
    (case,) = discover_cases(folder)
    with pytest.raises(CaseError, match=r"header claims shape \(4000, 4000, 4000\)"):
        load_case(case)


def test_trailing_singleton_axes_read_as_3d(case_writer) -> None:
    """(X, Y, Z, 1) was accepted but (X, Y, Z, 1, 1) (a NIfTI 5D "vector" of one) failed."""
    folder = case_writer("S-1")
    path = folder / "S-1-t2f.nii.gz"
    image = nib.load(path)
    data = np.asarray(image.dataobj)
    nib.save(nib.Nifti1Image(data[..., None, None], image.affine), path)
    (case,) = discover_cases(folder)
    assert load_case(case).arrays["t2f"].shape == data.shape


def test_files_are_read_two_at_a_time_and_fail_as_read_in_turn(
    case_writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A case's files are read on two threads of their own, and a case with two bad files
    gets the error of the first in the modalities' order, as reading them in turn gave."""
    import threading

    from brats_goat.io import read

    threads: set[str] = set()
    real_load = read.load_image

    def load_image(*args):
        threads.add(threading.current_thread().name)
        return real_load(*args)

    monkeypatch.setattr(read, "load_image", load_image)
    (case,) = discover_cases(case_writer("O-1"))
    volumes = load_case(case)
    assert len(volumes.arrays) == 4 and {t.rsplit("_", 1)[0] for t in threads} == {
        "brats-goat-file"
    }

    def spoil(folder: Path, moved: str, truncated: str) -> None:
        image = nib.load(folder / f"{folder.name}-{moved}.nii.gz")
        affine = image.affine.copy()
        affine[0, 3] += 5
        moved_image = nib.Nifti1Image(np.asarray(image.dataobj), affine)
        nib.save(moved_image, folder / f"{folder.name}-{moved}.nii.gz")
        path = folder / f"{folder.name}-{truncated}.nii.gz"
        path.write_bytes(path.read_bytes()[:2000])

    grid_first = case_writer("O-2")
    spoil(grid_first, moved="t1n", truncated="t2w")
    msg = load_error(grid_first)
    assert "O-2-t1n.nii.gz" in msg and "different grid" in msg
    truncated_first = case_writer("O-3")
    spoil(truncated_first, moved="t2w", truncated="t1n")
    msg = load_error(truncated_first)
    assert "O-3-t1n.nii.gz" in msg and "different grid" not in msg


def test_files_on_an_orientations_edge_follow_the_first_files_order(case_writer) -> None:
    """Each file is reoriented as it is read, by its own affine; where affines equal within
    the grid tolerance still give different axis orders (an oblique scan at 45 degrees),
    every modality ends in the first file's order, as one reorientation of all gave."""
    from nibabel.orientations import apply_orientation

    from brats_goat.io.orientation import canonical_transform

    folder = case_writer("OB-1")
    stored = {}
    for k, modality in enumerate(("t1c", "t1n", "t2f", "t2w")):
        path = folder / f"OB-1-{modality}.nii.gz"
        image = nib.load(path)
        angle = np.pi / 4 + (2e-4 if k % 2 == 0 else -2e-4)
        affine = np.eye(4)
        affine[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        stored[modality] = np.asarray(image.dataobj).astype(np.float32)
        nib.save(nib.Nifti1Image(stored[modality], affine), path)
    images = {m: nib.load(folder / f"OB-1-{m}.nii.gz") for m in stored}
    orders = {m: canonical_transform(image).tolist() for m, image in images.items()}
    assert orders["t1c"] != orders["t1n"]  # the edge: the two affines order axes apart
    (case,) = discover_cases(folder)
    volumes = load_case(case)
    first = canonical_transform(images["t1c"])
    for modality, array in volumes.arrays.items():
        np.testing.assert_array_equal(array, apply_orientation(stored[modality], first))
        assert array.flags.c_contiguous and array.dtype == np.float32


def _wrapped_t1c(folder: Path) -> Path:
    """t1c scaled x45 and stored as int16 (values above 32767 wrap to negative): the
    probe's case gave ET 0, "ok", no warning."""
    path = folder / "C-1-t1c.nii.gz"
    image = nib.load(path)
    data = np.asarray(image.dataobj).astype(np.int64) * 45
    nib.save(nib.Nifti1Image(data.astype(np.int16), image.affine), path)
    return path


def test_int16_wraparound_leaves_the_sequence_out_with_a_warning(tmp_path: Path) -> None:
    folder = write_case(tmp_path, "C-1")
    path = _wrapped_t1c(folder)
    (case,) = discover_cases(folder)
    volumes = load_case(case, allow_missing=True, skip_corrupt=True)
    assert "t1c" not in volumes.present
    (warning,) = [w for w in volumes.warnings if "wrapped around" in w]
    assert str(path) in warning and "int16" in warning and "wider type" in warning


def test_int16_wraparound_fails_the_case_when_nothing_is_left(tmp_path: Path) -> None:
    folder = write_case(tmp_path, "C-1", skip=("t1n", "t2w", "t2f"))
    _wrapped_t1c(folder)
    (case,) = discover_cases(folder)
    with pytest.raises(CaseError) as info:
        load_case(case, allow_missing=True, skip_corrupt=True)
    assert "wrapped around the integer type" in str(info.value)


def test_signed_images_that_did_not_wrap_pass(tmp_path: Path) -> None:
    """Small negatives (ringing) in int16, and a float image z-scored inside the brain,
    are no wraparound."""
    folder = write_case(tmp_path, "C-1")
    t1c = nib.load(folder / "C-1-t1c.nii.gz")
    data = np.asarray(t1c.dataobj).astype(np.float32)
    ringing = data.astype(np.int16)
    ringing.ravel()[np.flatnonzero(data)[::50]] = -122  # TCGA-DU-7294's t2w reaches -122
    nib.save(nib.Nifti1Image(ringing, t1c.affine), folder / "C-1-t1c.nii.gz")
    t2w = nib.load(folder / "C-1-t2w.nii.gz")
    data = np.asarray(t2w.dataobj).astype(np.float32)
    inside = data != 0
    zscored = np.where(inside, (data - data[inside].mean()) / data[inside].std(), 0)
    nib.save(nib.Nifti1Image(zscored.astype(np.float32), t2w.affine), folder / "C-1-t2w.nii.gz")
    (case,) = discover_cases(folder)
    volumes = load_case(case, allow_missing=True, skip_corrupt=True)
    assert volumes.present == ("t1c", "t1n", "t2f", "t2w")
    assert not any("wrapped" in w for w in volumes.warnings)
