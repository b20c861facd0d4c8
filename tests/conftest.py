"""Shared fixtures: tiny synthetic BraTS-like cases and a real (tiny) checkpoint."""

from __future__ import annotations

import gzip
import hashlib
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
