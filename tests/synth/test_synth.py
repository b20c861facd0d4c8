"""The phantom generator: files, geometry, labels, determinism, contrasts, tumour kinds.

Every full-size case is generated once per module (module-scoped fixtures): a case takes
a few seconds, and the template maps are cached for the whole process.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage

from brats_goat.io.grid import BRATS_SHAPE, brats_affine
from brats_goat.synth import SynthCase, case_id, generate_case, plan_case
from brats_goat.synth.cli import synth
from brats_goat.synth.contrast import TISSUE_ORDER

MODALITIES = ("t1n", "t1c", "t2w", "t2f")
SEED = 5
SIX = ndimage.generate_binary_structure(3, 1)


def _run_cli(out: Path, *args: str) -> None:
    result = CliRunner().invoke(synth, [str(out), "--cases", "1", "--seed", str(SEED), *args])
    assert result.exit_code == 0, result.output + repr(result.exception)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One metastases case and one healthy case, written by the CLI."""
    root = tmp_path_factory.mktemp("synth")
    _run_cli(root / "tumour", "--kind", "metastases", "--quiet")
    _run_cli(root / "healthy", "--healthy", "--quiet")
    return {
        "tumour": root / "tumour" / case_id(0),
        "healthy": root / "healthy" / case_id(0),
    }


@pytest.fixture(scope="module")
def healthy_case() -> SynthCase:
    return generate_case(SEED, 0, healthy=True)


@pytest.fixture(scope="module")
def glioma_case() -> SynthCase:
    seed = next(s for s in range(100) if plan_case(s, 0, kind="glioma").enhancing)
    return generate_case(seed, 0, kind="glioma")


@pytest.fixture(scope="module")
def non_enhancing_case() -> SynthCase:
    seed = next(s for s in range(100) if not plan_case(s, 0, kind="glioma").enhancing)
    return generate_case(seed, 0, kind="glioma")


@pytest.fixture(scope="module")
def meningioma_case() -> SynthCase:
    return generate_case(SEED, 1, kind="meningioma")


def _load(folder: Path, suffix: str) -> nib.Nifti1Image:
    return nib.load(folder / f"{folder.name}-{suffix}.nii.gz")


def _check_labels(seg: np.ndarray, brain: np.ndarray) -> None:
    """BraTS nesting: labels in {0..3}, inside the brain, edema wrapping the core."""
    assert seg.dtype == np.uint8
    assert set(np.unique(seg)) <= {0, 1, 2, 3}
    assert not np.any((seg > 0) & ~brain), "labels outside the brain"
    core = np.isin(seg, (1, 3))
    assert core.any() and (seg == 2).any()
    ring = ndimage.binary_dilation(core, SIX) & ~core & brain
    assert np.all(seg[ring] > 0), "tumour core touches label-0 brain: edema does not wrap it"


def test_cli_files_geometry_and_dtypes(written: dict[str, Path]) -> None:
    for name, folder in written.items():
        suffixes = [*MODALITIES, "seg"] if name == "tumour" else list(MODALITIES)
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted(f"{folder.name}-{s}.nii.gz" for s in suffixes)
        for suffix in suffixes:
            img = _load(folder, suffix)
            assert img.shape == BRATS_SHAPE
            np.testing.assert_allclose(img.affine, brats_affine())
            assert int(img.header["sform_code"]) == 1
            assert int(img.header["qform_code"]) == 1
            np.testing.assert_allclose(img.get_qform(), brats_affine(), atol=1e-6)
            expected = np.uint8 if suffix == "seg" else np.int16
            assert img.header.get_data_dtype() == expected
            assert np.asarray(img.dataobj).dtype == expected


def test_cli_brain_support_and_labels(written: dict[str, Path]) -> None:
    folder = written["tumour"]
    data = {m: np.asarray(_load(folder, m).dataobj) for m in MODALITIES}
    brain = data["t1n"] > 0
    for m in MODALITIES:
        # Background exactly 0 outside the brain, and the same brain in every modality.
        assert np.array_equal(data[m] > 0, brain)
        assert data[m].min() == 0
    _check_labels(np.asarray(_load(folder, "seg").dataobj), brain)


def test_healthy_has_no_label(written: dict[str, Path], healthy_case: SynthCase) -> None:
    assert not (written["healthy"] / f"{case_id(0)}-seg.nii.gz").exists()
    assert healthy_case.seg is None
    assert healthy_case.kind == "healthy"


def test_deterministic_for_a_seed(
    written: dict[str, Path], healthy_case: SynthCase, glioma_case: SynthCase
) -> None:
    # The CLI wrote case (SEED, 0, healthy) in another call: identical arrays.
    for m in MODALITIES:
        on_disk = np.asarray(_load(written["healthy"], m).dataobj)
        assert np.array_equal(on_disk, healthy_case.images[m])
    # Another seed (or index) gives another brain.
    other = np.asarray(_load(written["tumour"], "t1n").dataobj)
    assert not np.array_equal(other > 0, healthy_case.images["t1n"] > 0)
    assert not np.array_equal(glioma_case.images["t2w"], healthy_case.images["t2w"])


@pytest.mark.parametrize("which", ["healthy_case", "glioma_case"])
def test_tissue_contrast_order(which: str, request: pytest.FixtureRequest) -> None:
    case: SynthCase = request.getfixturevalue(which)
    normal = case.brain if case.seg is None else case.brain & (case.seg == 0)
    for mod, order in TISSUE_ORDER.items():
        image = case.images[mod]
        medians = [np.median(image[(case.tissues[t] > 0.9) & normal]) for t in order]
        assert medians[0] > medians[1] > medians[2], (mod, order, medians)


def test_t1c_has_enhancing_vessels_and_dura(healthy_case: SynthCase) -> None:
    def bright_tail(mod: str) -> float:
        image = healthy_case.images[mod]
        wm = np.median(image[healthy_case.tissues["wm"] > 0.9])
        return float(np.percentile(image[healthy_case.brain], 99.9) / wm)

    assert bright_tail("t1c") > bright_tail("t1n") + 0.2


def test_every_kind_is_nested_and_in_brain(
    glioma_case: SynthCase, non_enhancing_case: SynthCase, meningioma_case: SynthCase
) -> None:
    for case in (glioma_case, non_enhancing_case, meningioma_case):
        assert case.seg is not None and case.seg.shape == BRATS_SHAPE
        _check_labels(case.seg, case.brain)
        # The images' brain (non-zero) is the case's brain mask.
        assert np.array_equal(case.images["t2f"] > 0, case.brain)


def test_glioma_is_large_with_necrosis_and_rim(glioma_case: SynthCase) -> None:
    seg = glioma_case.seg
    core = np.isin(seg, (1, 3))
    assert (seg == 3).any() and (seg == 1).any()
    assert core.sum() > 2000  # a centimetres-sized core (a 2 cm sphere is 4189 voxels)
    t1c = glioma_case.images["t1c"]
    assert np.median(t1c[seg == 3]) > 1.2 * np.median(t1c[seg == 1])


def test_non_enhancing_glioma_has_no_et(non_enhancing_case: SynthCase) -> None:
    seg = non_enhancing_case.seg
    assert not (seg == 3).any()
    assert (seg == 1).any() and (seg == 2).any()


def test_non_enhancing_share_among_seeds() -> None:
    plans = [plan_case(s, 0, kind="mixed") for s in range(12)]
    kinds = {p.kind for p in plans}
    assert kinds <= {"glioma", "metastases", "meningioma"} and len(kinds) >= 2
    assert any(not p.enhancing for p in plans)


def test_metastases_are_several_small_lesions(written: dict[str, Path]) -> None:
    seg = np.asarray(_load(written["tumour"], "seg").dataobj)
    _, n = ndimage.label(seg > 0, structure=np.ones((3, 3, 3)))
    assert n >= 2
    core_components, n_core = ndimage.label(np.isin(seg, (1, 3)))
    sizes = np.bincount(core_components.ravel())[1:]
    # 3-15 mm lesions: the largest core is at most a (15 mm x 1.3 aspect, bumpy) blob.
    assert n_core >= 2 and sizes.max() < 6000
    assert (seg == 3).sum() > (seg == 1).sum()  # mostly enhancing


def test_meningioma_touches_the_brain_boundary(meningioma_case: SynthCase) -> None:
    seg, brain = meningioma_case.seg, meningioma_case.brain
    core = np.isin(seg, (1, 3))
    assert np.any(ndimage.binary_dilation(core, SIX) & ~brain), "not extra-axial"
    assert (seg == 3).sum() > 3 * (seg == 1).sum()  # homogeneously enhancing


def test_invalid_arguments_are_refused(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(synth, [str(tmp_path), "--cases", "0"]).exit_code == 2
    assert runner.invoke(synth, [str(tmp_path), "--cases", "1", "--kind", "x"]).exit_code == 2
    with pytest.raises(ValueError):
        generate_case(0, 0, kind="lymphoma")
