"""Label-free threshold calibration on healthy slices, and predict on a modality subset with
the calibrated per-subset thresholds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner

from brats_goat.calibration.thresholds import calibrate_thresholds, healthy_maps, healthy_segmenter
from brats_goat.cli.main import main
from brats_goat.io.discover import discover_cases
from brats_goat.model.checkpoint import load_checkpoint, register_in_manifest, save_checkpoint
from brats_goat.model.network import MODEL_PRESETS, MViTAE
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.stages.normalise import NormaliseConfig
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.stages.threshold import binarise, largest_component_voxels
from brats_goat.training.config import TrainConfig
from brats_goat.training.healthy import collect_healthy_slices

TINY = MODEL_PRESETS["tiny"]
TINY_MASKED = dataclasses.replace(TINY, modality_mask=True)
SELECT = TrainConfig(min_brain_voxels=200, healthy_margin=1)


def _healthy_slices(tmp_path: Path, case_writer, n: int = 2) -> np.ndarray:
    for i in range(n):
        case_writer(f"H-{i}", seed=10 + i, lesion=False)
    cases = discover_cases(tmp_path / "in")
    return collect_healthy_slices(cases, SELECT, NormaliseConfig(), image_size=48).slices


def test_thresholds_are_the_healthy_residual_percentile(tmp_path: Path, case_writer) -> None:
    slices = _healthy_slices(tmp_path, case_writer)
    torch.manual_seed(0)
    model = MViTAE(TINY_MASKED).eval()
    post, inf, dev = PostprocessConfig(), InferenceConfig(), torch.device("cpu")
    low, info_low = calibrate_thresholds(model, slices, post, 90.0, inf, dev)
    high, _ = calibrate_thresholds(model, slices, post, 99.9, inf, dev)
    maps, mask = healthy_maps(healthy_segmenter(model, post, inf, dev), slices)
    values = {name: m[mask] for name, m in maps.items()}
    assert low.threshold_t2f == round(float(np.percentile(values["t2f"], 90.0)), 4)
    assert high.threshold_t2f > low.threshold_t2f and high.threshold_t1c > low.threshold_t1c
    assert set(low.thresholds_by_subset) == {"t1c+t1n+t2f+t2w", "t1c+t2f"}
    assert set(low.peak_thresholds_by_subset) == set(low.thresholds_by_subset)
    for key, (t1c, t2f) in low.thresholds_by_subset.items():
        peak_t1c, peak_t2f = low.peak_thresholds_by_subset[key]
        assert peak_t1c >= t1c and peak_t2f >= t2f  # a peak is never below its threshold
    assert low.peak_thresholds_by_subset["t1c+t1n+t2f+t2w"][1] <= float(values["t2f"].max())
    # The ET minimum: the largest t1c component the threshold chain leaves on these slices.
    assert set(low.et_min_voxels_by_subset) == set(low.thresholds_by_subset)
    kept = binarise(maps["t1c"], mask, low.threshold_t1c, post)
    assert low.et_min_voxels_by_subset["t1c+t1n+t2f+t2w"] == largest_component_voxels(kept)
    assert info_low["et_min_voxels"] == low.et_min_voxels_by_subset
    assert info_low["n_slices"] == len(slices)


def _masked_weights(tmp_path: Path) -> Path:
    folder = tmp_path / "w"
    torch.manual_seed(0)
    path = folder / "masked.pt"
    sha = save_checkpoint(path, MViTAE(TINY_MASKED))
    register_in_manifest(path, sha, {"command": "tests"}, default=True)
    return folder


def test_calibrate_command_stores_thresholds_that_predict_uses(tmp_path: Path, case_writer) -> None:
    _healthy_slices(tmp_path, case_writer)
    weights = _masked_weights(tmp_path)
    out = tmp_path / "w" / "calibrated.pt"
    args = ["calibrate", str(tmp_path / "in"), "--weights", str(weights), "-o", str(out)]
    args += ["--min-brain-voxels", "200", "--percentile", "99", "--register"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    _, meta = load_checkpoint(out, None)
    post = meta["postprocess"]
    assert post.threshold_t2f != PostprocessConfig().threshold_t2f
    assert meta["info"]["calibration"]["percentile"] == 99
    manifest = json.loads((weights / "manifest.json").read_text())
    assert manifest["default"] == "calibrated.pt"
    # predict on a FLAIR + t1c case reads the subset thresholds from the new default.
    case_writer("SUB-1", seed=3, skip=("t1n", "t2w"))
    sub_in = tmp_path / "sub"
    sub_in.mkdir()
    (tmp_path / "in" / "SUB-1").rename(sub_in / "SUB-1")
    res = CliRunner().invoke(
        main, ["predict", str(sub_in), str(tmp_path / "o"), "--weights", str(weights), "-q"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    (case,) = report["cases"]
    assert case["modalities"] == ["t1c", "t2f"]
    assert any("segmented from t1c, t2f" in w for w in case["warnings"])
    assert (tmp_path / "o" / "SUB-1.nii.gz").is_file()
    # The report records the thresholds that were applied: the checkpoint's.
    assert report["config"]["postprocess"]["threshold_t2f"] == post.threshold_t2f
    assert report["config"]["postprocess"]["thresholds_by_subset"]["t1c+t2f"]
