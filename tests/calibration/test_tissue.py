"""Calibration on real-style whole volumes: known lesions and tumour slices left out, the
median over subjects of each subject's percentile; and the late-fusion anomaly map."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from brats_goat.calibration.tissue import (
    TissueCalibrationConfig,
    calibrate_on_tissue,
    case_maps,
    healthy_tissue,
)
from brats_goat.cli.main import main
from brats_goat.conventions import MODALITIES
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import CaseError, load_case, load_reference_labels
from brats_goat.model.checkpoint import load_checkpoint, register_in_manifest, save_checkpoint
from brats_goat.model.network import MODEL_PRESETS, MViTAE
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.segmenter import IntensitySegmenter, MViTAESegmenter, PipelineConfig
from brats_goat.stages.anomaly import residual_maps
from brats_goat.stages.refine_config import RefineConfig
from brats_goat.training.config import TrainConfig
from tests.conftest import write_case

MASKED = dataclasses.replace(MODEL_PRESETS["tiny"], modality_mask=True)
CFG = TissueCalibrationConfig(
    percentile=99.0, selection=TrainConfig(min_brain_voxels=200, healthy_margin=1)
)


def intensity() -> IntensitySegmenter:
    return IntensitySegmenter(PipelineConfig(refine=RefineConfig("none")))


def as_lesion_subject(folder: Path) -> Path:
    """Turn a written case's label map into a ``-lesion`` mask (a healthy-real subject)."""
    seg = next(folder.glob("*-seg.nii.gz"))
    lesion = seg.with_name(seg.name.replace("-seg", "-lesion"))
    seg.rename(lesion)
    return lesion


def per_case_percentile(segmenter, case, healthy: bool, name: str = "t2f") -> float:
    volumes = load_case(case, allow_missing=True)
    sample = case_maps(segmenter, case, volumes, volumes.present, CFG, healthy)
    return float(np.percentile(sample.maps[name][sample.healthy], CFG.percentile))


def test_threshold_is_the_median_of_subject_percentiles(tmp_path: Path, case_writer) -> None:
    for i in range(3):
        case_writer(f"H-{i}", seed=20 + i, lesion=False)
    cases = discover_cases(tmp_path / "in")
    post, info = calibrate_on_tissue(intensity(), cases, [], CFG)
    expected = np.median([per_case_percentile(intensity(), c, True) for c in cases])
    assert post.threshold_t2f == round(float(expected), 4)
    assert post.thresholds_by_subset["t1c+t2f"] == (post.threshold_t1c, post.threshold_t2f)
    assert info["data"]["t1c+t1n+t2f+t2w"]["cases"] == ["H-0", "H-1", "H-2"]
    assert info["calibrated_on"] == ["H-0", "H-1", "H-2"]


def test_known_lesions_are_left_out(tmp_path: Path, case_writer) -> None:
    case_writer("MS-1", seed=5, lesion=True)
    as_lesion_subject(tmp_path / "in" / "MS-1")
    case = discover_cases(tmp_path / "in")[0]
    left_out = per_case_percentile(intensity(), case, True)
    (tmp_path / "in" / "MS-1" / "MS-1-lesion.nii.gz").unlink()
    with_lesion = per_case_percentile(intensity(), discover_cases(tmp_path / "in")[0], True)
    assert with_lesion > left_out + 1.0  # the bright lesion would have set the threshold


def test_tumour_cases_give_only_far_slices_and_need_a_label_map(
    tmp_path: Path, case_writer
) -> None:
    case_writer("T-1", seed=7, lesion=True)
    case = discover_cases(tmp_path / "in")[0]
    volumes = load_case(case)
    brain = volumes.stack().any(axis=0)
    healthy = healthy_tissue(case, volumes, brain, CFG, subject_healthy=False)
    tumour_z = np.flatnonzero(load_reference_labels(case, volumes).any(axis=(0, 1)))
    kept_z = np.flatnonzero(healthy.any(axis=(0, 1)))
    margin = CFG.selection.healthy_margin
    assert kept_z.size and tumour_z.size
    assert np.abs(kept_z[:, None] - tumour_z[None, :]).min() > margin
    assert (healthy[..., kept_z] == brain[..., kept_z]).all()  # whole slices, not voxels
    next((tmp_path / "in" / "T-1").glob("*-seg.nii.gz")).unlink()
    with pytest.raises(CaseError, match="no healthy"):  # where the tumour is unknown: nothing
        calibrate_on_tissue(intensity(), [], discover_cases(tmp_path / "in"), CFG)


def test_model_subsets_use_only_cases_with_their_sequences(tmp_path: Path, case_writer) -> None:
    case_writer("FULL", seed=1, lesion=False)
    case_writer("NO-T1C", seed=2, lesion=False, skip=("t1c",))
    torch.manual_seed(0)
    model = MViTAE(MASKED)
    segmenter = MViTAESegmenter(model, PipelineConfig(refine=RefineConfig("none")))
    post, info = calibrate_on_tissue(segmenter, discover_cases(tmp_path / "in"), [], CFG)
    assert info["data"]["t1c+t1n+t2f+t2w"]["cases"] == ["FULL"]
    assert info["data"]["t1c+t2f"]["cases"] == ["FULL"]
    assert set(post.et_min_voxels_by_subset) == {"t1c+t1n+t2f+t2w", "t1c+t2f"}
    # The intensity map does not depend on the other sequences: NO-T1C gives its FLAIR.
    _, info_int = calibrate_on_tissue(intensity(), discover_cases(tmp_path / "in"), [], CFG)
    assert info_int["data"]["t1c+t2f"]["cases"] == ["FULL", "NO-T1C"]


def test_fusion_weight_blends_residual_and_image() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(4, 12, 12, 5)).astype(np.float32)
    recon = rng.normal(size=(4, 12, 12, 5)).astype(np.float32)
    mask = np.ones((12, 12, 5), dtype=bool)
    post = PostprocessConfig(median_size=0)
    c = MODALITIES.index("t2f")
    plain = residual_maps(image, recon, mask, post)["t2f"]
    np.testing.assert_array_equal(plain, image[c] - recon[c])  # w = 0: the paper's residual
    half = residual_maps(image, recon, mask, dataclasses.replace(post, fusion_weight=0.5))
    np.testing.assert_allclose(half["t2f"], 0.5 * (image[c] - recon[c]) + 0.5 * image[c], 1e-6)
    whole = residual_maps(image, recon, mask, dataclasses.replace(post, fusion_weight=1.0))
    np.testing.assert_array_equal(whole["t2f"], image[c])  # w = 1: the intensity map
    with pytest.raises(ValueError, match="fusion_weight"):
        PostprocessConfig(fusion_weight=1.5)


def test_calibrate_command_tissue_mode_records_its_data(tmp_path: Path, case_writer) -> None:
    for i in range(2):
        case_writer(f"H-{i}", seed=30 + i, lesion=False)
    write_case(tmp_path / "tumour", "T-1", seed=3, lesion=True)
    folder = tmp_path / "w"
    torch.manual_seed(0)
    sha = save_checkpoint(folder / "m.pt", MViTAE(MASKED))
    register_in_manifest(folder / "m.pt", sha, {"command": "tests"}, default=True)
    out = folder / "tissue.pt"
    args = ["calibrate", str(tmp_path / "in"), "--weights", str(folder), "-o", str(out)]
    args += ["--tissue", "--tumour-cases", str(tmp_path / "tumour"), "--fusion-weight", "0.5"]
    args += ["--min-brain-voxels", "200", "--percentile", "99"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    _, meta = load_checkpoint(out, None)
    calibration = meta["info"]["calibration"]
    assert calibration["calibrated_on"] == ["H-0", "H-1", "T-1"]
    assert calibration["data"]["t1c+t2f"]["cases"] == ["H-0", "H-1", "T-1"]
    assert meta["postprocess"].fusion_weight == 0.5
    assert meta["postprocess"].threshold_t2f == calibration["thresholds"]["t1c+t1n+t2f+t2w"]["t2f"]
    refused = CliRunner().invoke(main, [*args[:6], "--tumour-cases", str(tmp_path / "tumour")])
    assert refused.exit_code == 2 and "--tissue" in refused.output
