"""Forward-pass runtimes: OpenVINO must compute what eager torch computes (torch is the
reference), and a missing package or a GPU falls back to torch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from brats_goat.model.network import MODEL_PRESETS, MViTAE
from brats_goat.segmenter import MViTAESegmenter, PipelineConfig
from brats_goat.stages import runtime
from brats_goat.stages.reconstruct import InferenceConfig, reconstruct_volume
from brats_goat.stages.runtime import prepare_network

#: Float32 on both sides; the shipped model differs by ~4e-6 on real slices.
ATOL = 1e-4

#: The shipped model's design (token bottleneck, modality mask), at the tiny preset's size.
TINY_TOKENS = dataclasses.replace(
    MODEL_PRESETS["tiny"], bottleneck="tokens", token_dim=4, modality_mask=True
)


def tiny_model(cfg=MODEL_PRESETS["tiny"]) -> MViTAE:
    """A randomly initialised network whose batch norms and modality embedding are not the
    identity, so that what the runtime fuses is really tested."""
    torch.manual_seed(0)
    model = MViTAE(cfg)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    if model.modality_embed is not None:
        torch.nn.init.normal_(model.modality_embed.weight, std=0.1)
    return model.eval()


@pytest.mark.parametrize("cfg", [MODEL_PRESETS["tiny"], TINY_TOKENS], ids=["flat", "tokens"])
def test_openvino_matches_torch(cfg) -> None:
    pytest.importorskip("openvino")
    model = tiny_model(cfg)
    x = torch.randn(5, cfg.in_channels, cfg.image_size, cfg.image_size)
    present = torch.tensor([[1.0, 1, 1, 1], [1, 0, 1, 1], [0, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])
    network = runtime.OpenVINONetwork(model)
    with torch.no_grad():
        expected = model(x, present)
        default = model(x)
    np.testing.assert_allclose(network(x, present).numpy(), expected.numpy(), atol=ATOL)
    np.testing.assert_allclose(network(x).numpy(), default.numpy(), atol=ATOL)  # all present
    one = network(x[:1], present[:1]).numpy()  # the batch axis is dynamic
    np.testing.assert_allclose(one, expected[:1].numpy(), atol=ATOL)


def test_reconstruct_volume_with_openvino_matches_torch() -> None:
    pytest.importorskip("openvino")
    model = tiny_model(TINY_TOKENS)
    vol = np.random.default_rng(1).normal(size=(4, 50, 44, 7)).astype(np.float32)
    brain = np.zeros(vol.shape[1:], bool)
    brain[5:45, 5:40, 1:6] = True
    present = np.array([True, True, False, True])
    cfg = InferenceConfig(batch_size=3, runtime="openvino")
    cpu = torch.device("cpu")
    network = prepare_network(model, cfg.runtime, cpu)
    assert isinstance(network, runtime.OpenVINONetwork)
    got = reconstruct_volume(network, vol, brain, cfg, cpu, present=present)
    exact = dataclasses.replace(cfg, precision="float32")  # OpenVINO runs float32 here
    want = reconstruct_volume(model, vol, brain, exact, cpu, present=present)
    np.testing.assert_allclose(got, want, atol=ATOL)


def test_torch_runs_where_openvino_cannot(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_model()
    torch_module = runtime.MViTAE
    assert isinstance(prepare_network(model, "torch", torch.device("cpu")), torch_module)
    # auto (the default) keeps the MViT-AE on torch, its bfloat16 path, without a word.
    assert isinstance(prepare_network(model, "auto", torch.device("cpu")), torch_module)
    assert capsys.readouterr().err == ""
    assert isinstance(prepare_network(model, "openvino", torch.device("cuda")), torch_module)
    assert "CPU only" in capsys.readouterr().err
    monkeypatch.setattr(runtime, "openvino_installed", lambda: False)
    assert isinstance(prepare_network(model, "openvino", torch.device("cpu")), torch_module)
    assert "openvino and onnx packages are not both installed" in capsys.readouterr().err
    # The report's precision names what ran: torch's arithmetic, not the runtime asked for.
    config = PipelineConfig(inference=InferenceConfig(device="cpu", runtime="openvino"))
    assert MViTAESegmenter(model, config).precision in ("float32", "bfloat16")


def test_unknown_runtime_is_refused() -> None:
    with pytest.raises(ValueError, match="runtime must be one of"):
        InferenceConfig(runtime="tensorrt")
    with pytest.raises(ValueError, match="runtime must be one of"):
        prepare_network(tiny_model(), "tensorrt", torch.device("cpu"))


@pytest.mark.parametrize("cfg", [MODEL_PRESETS["tiny"], TINY_TOKENS], ids=["flat", "tokens"])
def test_folded_batchnorm_is_the_same_network(cfg) -> None:
    """torch runs the decoder with each BatchNorm folded into its transposed convolution:
    no BatchNorm left, the same output up to float rounding, the model itself untouched."""
    model = tiny_model(cfg)
    folded = runtime.fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(3, cfg.in_channels, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), atol=1e-5)
