"""Cases on other grids (issue 17, item 8): a case off the 1 mm grid, or wider than the
model's 240 x 240 slices, is segmented on a 1 mm frame centred on its brain and written
back on its own grid and header.

Each case here is a small phantom (an ellipsoid brain with a bright tumour, the sizes in mm)
written as real NIfTI files and run through ``predict`` with the intensity method.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats_goat.io.discover import discover_cases
from brats_goat.io.read import CaseError, load_case
from brats_goat.io.resample import FRAME_SIZE, FramedVolumes, to_model_frame
from brats_goat.run.predict import predict
from brats_goat.segmenter import make_segmenter
from tests.conftest import CONTRAST

#: Brain half-axes (mm); the tumour: radius and offset from the brain's centre (mm).
BRAIN_RADII = (60.0, 70.0, 30.0)
TUMOUR_RADIUS = 14.0
TUMOUR_OFFSET = (20.0, -15.0, 4.0)


def phantom(
    shape: tuple[int, int, int],
    spacing: float,
    centre_mm: tuple[float, float, float],
    tumour_offset: tuple[float, float, float] = TUMOUR_OFFSET,
    radii: tuple[float, float, float] = BRAIN_RADII,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """int16 images on an isotropic grid (voxel ``i`` at ``i * spacing`` mm) and the tumour."""
    rng = np.random.default_rng(0)
    mm = np.indices(shape, dtype=np.float32) * np.float32(spacing)
    d = mm - np.array(centre_mm, np.float32)[:, None, None, None]
    brain = ((d / np.array(radii, np.float32)[:, None, None, None]) ** 2).sum(0) <= 1
    d -= np.array(tumour_offset, np.float32)[:, None, None, None]
    tumour = ((d**2).sum(0) <= TUMOUR_RADIUS**2) & brain
    del mm, d
    images = {}
    for modality, (base, bright) in CONTRAST.items():
        img = np.where(brain, base + rng.normal(0, 30, shape).astype(np.float32), 0)
        img[tumour] = bright + rng.normal(0, 30, int(tumour.sum()))
        images[modality] = img.astype(np.int16)
    return images, tumour


def save_case(
    root: Path,
    case_id: str,
    images: dict[str, np.ndarray],
    affine: np.ndarray,
    codes: tuple[int, int] = (1, 1),
    ext: str = ".nii.gz",
) -> Path:
    """A case folder as BraTS distributes them, with the given qform/sform codes."""
    folder = root / case_id
    folder.mkdir(parents=True)
    for modality, data in images.items():
        image = nib.Nifti1Image(data, affine)
        image.set_qform(affine, codes[0])
        image.set_sform(affine, codes[1])
        nib.save(image, folder / f"{case_id}-{modality}{ext}")
    return folder


def lps(spacing: tuple[float, float, float], shape: tuple[int, int, int]) -> np.ndarray:
    """BraTS-like (LPS-stored) affine for the given voxel size."""
    return np.array(
        [
            [-spacing[0], 0, 0, 0],
            [0, -spacing[1], 0, (shape[1] - 1) * spacing[1]],
            [0, 0, spacing[2], 0],
            [0, 0, 0, 1.0],
        ]
    )


def thick_slices(image: np.ndarray, n: int = 3) -> np.ndarray:
    """A 1 mm volume as an n mm thick-slice scan sees it: n slices averaged into one."""
    x, y, z = image.shape
    return image.reshape(x, y, z // n, n).mean(-1).astype(image.dtype)


def segment(root: Path, out: Path, **options) -> tuple[np.ndarray, dict]:
    """Labels (input grid) and report entry of the one case under ``root``."""
    report = predict(root, out, method="intensity", quiet=True, **options)
    (case,) = report.cases
    assert case.status == "ok", case.error
    return np.asarray(nib.load(case.output).dataobj), case


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_thick_slices_are_segmented_at_1mm_and_written_on_their_own_grid(
    tmp_path: Path,
) -> None:
    """1 x 1 x 3 mm used to be taken as it was (whole-tumour Dice 0.956 against the same
    case at 1 mm, on this phantom); resampled to 1 mm it is 0.98."""
    shape = (140, 160, 72)
    images, _ = phantom(shape, 1.0, (70.0, 80.0, 36.0))
    save_case(tmp_path / "iso", "ISO-1", images, lps((1, 1, 1), shape))
    iso, case = segment(tmp_path / "iso", tmp_path / "out-iso")
    assert case.resampled is None
    affine = lps((1, 1, 3), shape)
    affine[2, 3] = 1.0  # thick slice k covers 1 mm slices 3k..3k+2: its centre is 3k + 1
    thick = {m: thick_slices(a) for m, a in images.items()}
    save_case(tmp_path / "thick", "THICK-1", thick, affine)
    labels, case = segment(tmp_path / "thick", tmp_path / "out-thick")
    assert labels.shape == (140, 160, 24)
    assert dice(labels > 0, iso[:, :, 1::3] > 0) >= 0.97
    assert case.resampled == {
        "from": {"shape": [140, 160, 24], "spacing_mm": [1.0, 1.0, 3.0]},
        "to": {"shape": [240, 240, 71], "spacing_mm": [1.0, 1.0, 1.0]},
    }
    assert any("140x160x24 at 1x1x3 mm" in w and "240x240x71" in w for w in case.warnings)


def test_large_field_of_view_with_the_brain_off_centre_is_not_cut(tmp_path: Path) -> None:
    """A 300 x 300 grid whose brain lies outside the centred 240 x 240 window (where the
    model's plane used to be cropped): the frame is centred on the brain and keeps it all."""
    shape = (300, 300, 72)
    images, tumour = phantom(shape, 1.0, (225.0, 150.0, 36.0), tumour_offset=(45.0, 0.0, 4.0))
    assert (images["t2f"][270:] != 0).any() and tumour[270:].any()  # outside 30..269
    folder = save_case(tmp_path / "in", "WIDE-1", images, lps((1, 1, 1), shape))
    (found,) = discover_cases(folder)
    framed = to_model_frame(load_case(found))
    assert isinstance(framed, FramedVolumes)
    assert framed.arrays["t2f"].shape[:2] == (FRAME_SIZE, FRAME_SIZE)
    for modality, image in images.items():  # at 1 mm the frame is an exact crop
        assert np.count_nonzero(framed.arrays[modality]) == np.count_nonzero(image)
        assert np.isclose(framed.arrays[modality].sum(), image.sum(dtype=np.float64))
    labels, case = segment(tmp_path / "in", tmp_path / "out")
    assert labels.shape == shape
    assert dice(labels > 0, tumour) >= 0.95
    assert case.resampled["to"]["shape"][:2] == [FRAME_SIZE, FRAME_SIZE]


def oblique_ras(spacing: tuple[float, float, float], degrees: float) -> np.ndarray:
    """A RAS-stored affine rotated about z, like a scanner's oblique acquisition."""
    a = np.radians(degrees)
    rotation = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing)
    affine[:3, 3] = (-70.0, -80.0, -30.0)
    return affine


#: Header fields an output may differ in from its input: its dtype, no intensity scaling,
#: and its own display window, intent and description (issue 27).
OWN_FIELDS = {"datatype", "bitpix", "scl_slope", "scl_inter", "cal_min", "cal_max", "descrip"}
OWN_FIELDS |= {"intent_code", "intent_p1", "intent_p2", "intent_p3", "intent_name", "aux_file"}


def test_output_header_is_the_inputs_exactly(tmp_path: Path) -> None:
    """An oblique, RAS-stored 1 x 1 x 3 mm case with qform code 2 and sform code 1: labels,
    anomaly maps and the QC picture (with the case's reference) all come out, the NIfTI
    files on the input's grid with its header, field by field."""
    shape = (140, 160, 72)
    images, tumour = phantom(shape, 1.0, (70.0, 80.0, 36.0))
    thick = {m: thick_slices(a) for m, a in images.items()}
    affine = oblique_ras((1.0, 1.0, 3.0), 10.0)
    folder = save_case(tmp_path / "in", "OBL-1", thick, affine, codes=(2, 1))
    reference = nib.Nifti1Image(tumour[:, :, 1::3].astype(np.uint8) * 2, affine)
    nib.save(reference, folder / "OBL-1-seg.nii.gz")
    out = tmp_path / "out"
    labels, case = segment(tmp_path / "in", out, save_maps=True, qc_png=True)
    assert labels.any() and set(np.unique(labels)) <= {0, 1, 2, 3}
    assert not [w for w in case.warnings if "QC" in w]
    assert (out / "qc" / "OBL-1.png").is_file()
    source = nib.load(folder / "OBL-1-t2f.nii.gz")
    for name in ("OBL-1.nii.gz", "OBL-1-anomaly-t2f.nii.gz"):
        written = nib.load(out / name)
        assert written.shape == source.shape
        np.testing.assert_array_equal(written.affine, source.affine)
        assert int(written.header["qform_code"]) == 2 and int(written.header["sform_code"]) == 1
        for key in set(source.header.keys()) - OWN_FIELDS:
            np.testing.assert_array_equal(written.header[key], source.header[key], err_msg=key)
    assert nib.load(out / "OBL-1.nii.gz").get_data_dtype() == np.uint8


def test_memory_follows_the_frame_not_the_input_grid(tmp_path: Path) -> None:
    """A 0.5 mm case (7.3 M voxels) is segmented on a 1 mm frame (3.9 M): the stages never
    hold copies of the fine grid. Peak memory of the whole case, reading included, stays
    under 12 input-sized float32 volumes (reading alone holds 8; the pipeline on the fine
    grid itself, as before, peaked at 19.5)."""
    shape = (260, 280, 100)
    images, _ = phantom(shape, 0.5, (65.0, 70.0, 25.0), radii=(50.0, 60.0, 22.0))
    affine = lps((0.5, 0.5, 0.5), shape)
    folder = save_case(tmp_path / "in", "FINE-1", images, affine, ext=".nii")
    del images
    (found,) = discover_cases(folder)
    segmenter = make_segmenter("intensity")
    tracemalloc.start()
    try:
        volumes = to_model_frame(load_case(found, allow_missing=True))
        labels = volumes.to_stored(segmenter.segment(volumes).labels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert volumes.arrays["t2f"].shape[:2] == (FRAME_SIZE, FRAME_SIZE)
    assert labels.shape == shape and labels.any()
    assert peak < 12 * np.prod(shape) * 4


def test_brain_wider_than_the_frame_is_a_case_error(tmp_path: Path) -> None:
    """A 300 mm wide "brain" (an unstripped head, say) cannot be segmented on the model's
    240 mm: the case fails, saying why, instead of losing part of it."""
    rng = np.random.default_rng(0)
    shape = (310, 310, 20)
    images = {}
    for m in CONTRAST:
        image = np.zeros(shape, np.int16)
        image[5:305, 5:305, 2:18] = rng.integers(50, 150, (300, 300, 16))
        images[m] = image
    folder = save_case(tmp_path / "in", "HEAD-1", images, lps((1, 1, 1), shape))
    (found,) = discover_cases(folder)
    with pytest.raises(CaseError, match=r"HEAD-1: the brain .* spans 300 x 300 mm .* 240 x 240"):
        to_model_frame(load_case(found))
    report = predict(tmp_path / "in", tmp_path / "out", method="intensity", quiet=True)
    assert report.cases[0].status == "failed" and "300 x 300 mm" in report.cases[0].error


@pytest.mark.parametrize("shape", [(240, 240, 155), (200, 180, 40)])
def test_cases_on_a_1mm_grid_that_fits_are_not_touched(tmp_path: Path, shape) -> None:
    """The BraTS grid (and smaller 1 mm grids) go exactly the old way."""
    centre = tuple((n - 1) / 2 for n in shape)
    images, _ = phantom(shape, 1.0, centre, radii=(60.0, 60.0, min(60.0, shape[2] / 3)))
    folder = save_case(tmp_path / "in", "BRATS-1", images, lps((1, 1, 1), shape))
    (found,) = discover_cases(folder)
    volumes = load_case(found)
    assert to_model_frame(volumes) is volumes
    assert volumes.resampled is None


def test_frame_on_a_1mm_grid_is_a_crop_and_labels_come_back_exactly(tmp_path: Path) -> None:
    """256 x 256 at 1 mm: the frame starts on an input voxel, so images are cropped (no
    blur) and a label map survives the trip to the frame and back unchanged."""
    shape = (256, 256, 40)
    images, tumour = phantom(shape, 1.0, (128.0, 128.0, 20.0), radii=(60.0, 70.0, 16.0))
    folder = save_case(tmp_path / "in", "CROP-1", images, lps((1, 1, 1), shape))
    (found,) = discover_cases(folder)
    volumes = load_case(found)
    framed = to_model_frame(volumes)
    assert isinstance(framed, FramedVolumes)
    pad = 32  # the frame may reach past the volume: zeros there
    padded = np.pad(volumes.arrays["t2f"], pad)
    start = np.array(framed.frame.offset) + pad
    window = tuple(slice(a, a + n) for a, n in zip(start, framed.frame.shape, strict=True))
    np.testing.assert_allclose(framed.arrays["t2f"], padded[window], rtol=0, atol=1e-6)
    labels = volumes.from_stored(tumour.astype(np.uint8) * 2)
    there = framed.frame.to_frame(labels, nearest=True)
    np.testing.assert_array_equal(framed.to_stored(there), tumour.astype(np.uint8) * 2)
