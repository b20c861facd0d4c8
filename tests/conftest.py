"""Shared fixtures: tiny synthetic BraTS-like cases and a real (tiny) checkpoint."""

from __future__ import annotations

import gzip
import hashlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from brats_goat.io.grid import brats_affine
from brats_goat.model.checkpoint import register_in_manifest, save_checkpoint
from brats_goat.model.network import MODEL_PRESETS, MViTAE
from brats_goat.stages.ir_cache import CACHE_ENV

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
TINY_SHAPE = (48, 48, 20)

#: Mean intensity of (brain, lesion) per modality of the synthetic cases.
CONTRAST = {"t1n": (600, 450), "t1c": (650, 1300), "t2w": (500, 900), "t2f": (400, 950)}
NAMES_2023 = {"t1n": "t1n", "t1c": "t1c", "t2w": "t2w", "t2f": "t2f"}
NAMES_LEGACY = {"t1n": "t1", "t1c": "t1ce", "t2w": "t2", "t2f": "flair"}


def ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape)
    return ((grid - np.array(centre)[:, None, None, None]) ** 2).sum(0) <= radius**2


def synthetic_volumes(
    shape: tuple[int, int, int] = TINY_SHAPE, seed: int = 0, lesion: bool = True
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Ellipsoid 'brain' with noise and an optional bright spherical lesion; background 0."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float32)
    centre = (np.array(shape) - 1) / 2
    radii = np.array(shape) * np.array([0.4, 0.45, 0.45])
    brain = (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) <= 1
    lesion_c = centre + np.array([4, -3, 0])
    tumour = (((grid - lesion_c[:, None, None, None]) ** 2).sum(0) <= 5**2) & brain
    if not lesion:
        tumour[:] = False
    images = {}
    for modality, (base, bright) in CONTRAST.items():
        img = np.where(brain, base + rng.normal(0, 30, shape), 0.0)
        img[tumour] = bright + rng.normal(0, 30, int(tumour.sum()))
        images[modality] = img
    return images, tumour


def write_case(
    root: Path,
    case_id: str,
    *,
    names: dict[str, str] = NAMES_2023,
    sep: str = "-",
    ext: str = ".nii.gz",
    dtype: type = np.int16,
    affine: np.ndarray | None = None,
    seed: int = 0,
    lesion: bool = True,
    shape: tuple[int, int, int] = TINY_SHAPE,
    skip: tuple[str, ...] = (),
) -> Path:
    """Write one synthetic case folder the way BraTS distributes them."""
    folder = root / case_id
    folder.mkdir(parents=True, exist_ok=True)
    images, tumour = synthetic_volumes(shape, seed, lesion)
    aff = brats_affine() if affine is None else affine
    for modality, data in images.items():
        if modality in skip:
            continue
        img = nib.Nifti1Image(data.astype(dtype), aff)
        img.set_qform(aff, 1)
        img.set_sform(aff, 1)
        nib.save(img, folder / f"{case_id}{sep}{names[modality]}{ext}")
    seg = nib.Nifti1Image(tumour.astype(np.uint8) * 2, aff)
    nib.save(seg, folder / f"{case_id}{sep}seg{ext}")
    return folder


def load_error(folder: Path, allow_missing: bool = False) -> str:
    """The ``CaseError`` message ``load_case`` gives for the one case in ``folder`` (the
    test fails if it gives none)."""
    from brats_goat.io.discover import discover_cases
    from brats_goat.io.read import CaseError, load_case

    (case,) = discover_cases(folder)
    with pytest.raises(CaseError) as info:
        load_case(case, allow_missing=allow_missing)
    return str(info.value)


@pytest.fixture
def case_writer(tmp_path: Path) -> Callable[..., Path]:
    """``case_writer('ID', **opts)`` writes a case under ``tmp_path/in``."""
    root = tmp_path / "in"

    def make(case_id: str, **kwargs) -> Path:
        return write_case(root, case_id, **kwargs)

    return make


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint of the 'tiny' preset (48 px), saved and registered like shipped ones."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    model = MViTAE(MODEL_PRESETS["tiny"])
    path = folder / "tiny.pt"
    sha = save_checkpoint(path, model, info={"purpose": "tests"})
    register_in_manifest(path, sha, {"command": "tests/conftest.py"}, default=True)
    return folder


@pytest.fixture(autouse=True)
def no_default_refinement(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of everything but refinement run without it, whatever the developer's own
    $BRATS_GOAT_REFINE says (LiteMedSAM encodes slices at ~4 s each); refinement tests
    choose a backend explicitly and tests/stages/test_sam_backends.py checks what ``auto``
    resolves to."""
    monkeypatch.setenv("BRATS_GOAT_REFINE", "none")


@pytest.fixture(scope="session", autouse=True)
def session_ir_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The OpenVINO model cache (``brats_goat.stages.ir_cache``) of module- and
    session-scoped fixtures: never the user's own, whose entries would spare tests the
    export they count or exercise."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("ir-cache")))
        yield


@pytest.fixture(autouse=True)
def fresh_ir_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test starts with an empty OpenVINO model cache of its own (outside
    ``tmp_path``, which tests list), so that one test's entries cannot spare another the
    export it counts."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("ir-cache")))


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (to prove inputs are never modified)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def require_real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real MRI cases not found at {REAL_DATA} (see README: real-data tests)")
    return REAL_DATA


def rewrite_header_raw(path: Path, edit: Callable[[nib.Nifti1Header], None]) -> None:
    """Rewrite ``path`` with header fields changed by ``edit(header)`` and written as they
    are (``nib.save`` would recompute the geometry from the affine)."""
    image = nib.load(path)
    header = image.header.copy()
    data = np.asarray(image.dataobj).astype(header.get_data_dtype())
    edit(header)
    with gzip.open(path, "wb") as f:
        f.write(header.binaryblock)
        f.write(b"\0" * (int(header["vox_offset"]) - len(header.binaryblock)))
        f.write(data.tobytes(order="F"))


#: Tests marked ``slow`` here, in one list, so that ``make check`` (``-m "not slow and not
#: real"``) stays under 2 minutes: each took 1.5 s or more on the shared 2-core machine
#: (``pytest --durations=0``), mostly real ``predict`` or ``synth`` processes, training runs
#: and OpenVINO compiles. A file name marks the whole file (its module fixtures are the cost);
#: ``file::function`` marks every parametrisation of that test. ``make test`` runs them all.
SLOW: frozenset[str] = frozenset(
    {
        "cli/test_messages.py::test_a_successful_run_whose_stdout_fails_exits_0_and_says_why",
        "cli/test_messages.py::test_evaluate_with_a_read_only_prediction_folder",
        "cli/test_messages.py::test_merge_reports_in_a_read_only_folder",
        "cli/test_messages.py::test_synth_into_a_read_only_folder",
        "cli/test_predict_hostile.py",
        "cli/test_predict_input.py::test_bad_weights_create_no_output_folder_in_a_real_run",
        "cli/test_predict_input.py::test_unreadable_case_folder_fails_alone",
        "cli/test_predict_input.py::test_unreadable_input_is_a_usage_error",
        "cli/test_predict_input.py::test_unreadable_modality_file_fails_its_case_naming_permission",
        "io/test_discover.py::test_unreadable_folders",
        "io/test_read.py::test_unreadable_file_names_permission",
        "io/test_resample.py::test_large_field_of_view_with_the_brain_off_centre_is_not_cut",
        "io/test_resample.py::test_output_header_is_the_inputs_exactly",
        "io/test_resample.py::test_thick_slices_are_segmented_at_1mm_and_written_on_their_own_grid",
        "run/test_lock.py::test_second_run_is_refused_naming_folder_and_pid",
        "run/test_lock.py::test_shards_of_one_run_share_the_folder_but_not_a_shard",
        "stages/test_ir_cache.py::test_a_cache_that_cannot_be_written_is_no_cache",
        "stages/test_ir_cache.py::test_a_damaged_entry_is_exported_again_and_replaced",
        "stages/test_ir_cache.py::test_a_second_backend_reads_the_encoder_from_the_cache",
        "stages/test_ir_cache.py::test_an_empty_cache_variable_turns_the_cache_off",
        "stages/test_labels.py::test_enhancing_islands_away_from_the_core_are_dropped",
        "stages/test_sam_backends.py::test_official_sam_batches_slices_and_keeps_prompt_order",
        "stages/test_sam_encoder_runtime.py",
        "synth/test_synth.py",
        "test_entrypoint.py",
        "test_gpu_check.py::test_gpu_check_refuses_cuda_without_a_gpu",
        "test_memory.py",
        "calibration/test_thresholds.py::test_calibrate_command_stores_thresholds_that_predict_uses",
        "calibration/test_thresholds.py::test_thresholds_are_the_healthy_residual_percentile",
        "training/test_healthy_real.py::test_loss_ignores_absent_channels_and_lesion_voxels",
        "training/test_healthy_real.py::test_training_on_real_like_data_runs_and_calibrates",
        "training/test_train.py::test_presence_embedding_starts_as_the_model_it_was_initialised_from",
        "training/test_train.py::test_resume_continues_from_saved_step",
        "training/test_train.py::test_training_reduces_loss_and_saves_loadable_checkpoint",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests of ``SLOW``; an entry whose file was collected but whose test was not
    found (renamed, moved) is reported, so that the fast tier does not grow unnoticed."""
    tests_root = Path(__file__).resolve().parent
    seen: set[str] = set()
    files: set[str] = set()
    for item in items:
        if not item.path.resolve().is_relative_to(tests_root):
            continue
        file = item.path.resolve().relative_to(tests_root).as_posix()
        name = f"{file}::{getattr(item, 'originalname', item.name)}"
        files.add(file)
        for key in (file, name):
            if key in SLOW:
                item.add_marker(pytest.mark.slow)
                seen.add(key)
    if config.getoption("keyword") or any("::" in arg for arg in config.args):
        return  # a chosen few tests: the others of a file are not missing
    stale = sorted(
        key
        for key in SLOW - seen
        if key.split("::")[0] in files or not (tests_root / key.split("::")[0]).is_file()
    )
    if stale:
        warnings.warn(f"tests/conftest.py SLOW names no collected test: {stale}", stacklevel=1)
