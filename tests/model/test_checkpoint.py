"""Checkpoint provenance: manifest lookup and sha256 verification before loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from brats_goat.model.checkpoint import (
    WeightsError,
    load_checkpoint,
    load_verified,
    register_in_manifest,
    resolve_checkpoint,
    save_checkpoint,
    sha256_file,
)
from brats_goat.model.network import MODEL_PRESETS, MViTAE
from brats_goat.model.postprocess import PostprocessConfig

REPO_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def test_roundtrip_fp16_keeps_weights_close(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = MViTAE(MODEL_PRESETS["tiny"])
    path = tmp_path / "m.pt"
    sha = save_checkpoint(path, model, postprocess=PostprocessConfig(threshold_t2f=2.0))
    loaded, meta = load_checkpoint(path, sha)
    assert meta["postprocess"].threshold_t2f == 2.0
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, atol=2e-3, rtol=2e-3, msg=k)


def test_manifest_resolution_and_refusals(tmp_path: Path) -> None:
    model = MViTAE(MODEL_PRESETS["tiny"])
    path = tmp_path / "a.pt"
    sha = save_checkpoint(path, model)
    with pytest.raises(WeightsError, match=r"no manifest\.json"):
        resolve_checkpoint(path)
    register_in_manifest(path, sha, {"command": "test"}, default=True)
    assert resolve_checkpoint(tmp_path) == (path, sha)
    assert resolve_checkpoint(path) == (path, sha)
    load_verified(tmp_path)
    other = tmp_path / "b.pt"
    shutil.copy(path, other)
    with pytest.raises(WeightsError, match="not listed"):
        resolve_checkpoint(other)
    with path.open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        load_verified(tmp_path)


@pytest.mark.skipif(not (REPO_WEIGHTS / "manifest.json").is_file(), reason="no shipped weights")
def test_shipped_weights_verify_and_carry_provenance() -> None:
    manifest = json.loads((REPO_WEIGHTS / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        path = REPO_WEIGHTS / name
        if "removed" in entry and not path.exists():  # superseded: in git history only
            continue
        assert path.stat().st_size < 60 * 2**20, f"{name} over the 60 MB limit"
        assert sha256_file(path) == entry["sha256"]
        for key in ("command", "seed", "data", "cases"):
            assert key in entry, f"{name}: provenance field {key} missing"
    _, meta = load_verified(REPO_WEIGHTS)
    assert meta["model_config"].image_size == 240
