"""The MViTAE network: presets, output shapes, the token bottleneck and config checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from brats_goat.model.network import MODEL_PRESETS, MViTAE, count_parameters


def test_paper_preset_matches_published_architecture() -> None:
    cfg = MODEL_PRESETS["paper"]
    assert (cfg.patch_size, cfg.width, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.bottleneck_dim) == (
        24,
        512,
        6,
        8,
        1024,
        512,
    )
    model = MViTAE(cfg)
    assert cfg.n_tokens == 100
    assert 40e6 < count_parameters(model) < 42e6
    with torch.no_grad():
        code = model.encode(torch.zeros(1, 4, 240, 240))
    assert code.shape == (1, 512)


def test_model_output_shape_tiny() -> None:
    model = MViTAE(MODEL_PRESETS["tiny"]).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 4, 48, 48))
    assert out.shape == (3, 4, 48, 48)


def test_token_bottleneck_keeps_one_code_per_token_and_decodes_locally() -> None:
    """The ``tokens`` bottleneck: a (B, n_tokens, token_dim) code whose entries act on their
    own place in the image, unlike the flat code, where every entry touches every pixel."""
    cfg = MODEL_PRESETS["small-tokens"]
    model = MViTAE(cfg).eval()
    with torch.no_grad():
        code = model.encode(torch.zeros(1, 4, 240, 240))
        assert code.shape == (1, cfg.n_tokens, cfg.token_dim)
        base = model.decode(code)
        bumped = code.clone()
        bumped[0, 0] += 5.0  # token 0 = the top-left 24x24 patch
        diff = (model.decode(bumped) - base).abs().sum(dim=(0, 1))
    assert base.shape == (1, 4, 240, 240)
    assert diff[:60, :60].sum() > 0.99 * diff.sum()
    assert 2e6 < count_parameters(model) < 4e6


def test_token_bottleneck_config_is_checked() -> None:
    with pytest.raises(ValueError, match="bottleneck"):
        dataclasses.replace(MODEL_PRESETS["small"], bottleneck="spatial")
    with pytest.raises(ValueError, match="divisible"):
        dataclasses.replace(MODEL_PRESETS["small"], bottleneck="tokens")  # 5 stages: 240/32


@pytest.mark.parametrize("bottleneck", ["tokens", "flat"])
def test_decoding_a_window_gives_that_part_of_the_whole_image(bottleneck: str) -> None:
    """``decode(code, window)`` computes a part of the image from the parts of the decoder
    stages it reads; it must equal the whole image's crop, at the image's edges too."""
    cfg = dataclasses.replace(MODEL_PRESETS["tiny"], bottleneck=bottleneck)
    torch.manual_seed(0)
    model = MViTAE(cfg).eval()
    for layer in model.decoder:  # BatchNorm that is not the identity
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.normal_()
            layer.running_var.uniform_(0.5, 2.0)
    size = cfg.image_size
    x = torch.randn(2, cfg.in_channels, size, size)
    with torch.no_grad():
        whole = model(x)
        windows = [((0, size), (0, size)), ((5, size - 3), (1, 17)), ((0, 1), (size - 1, size))]
        windows.append(((size // 2, size // 2 + 1), (3, size)))
        for (r0, r1), (c0, c1) in windows:
            part = model(x, None, ((r0, r1), (c0, c1)))
            assert part.shape == (2, cfg.in_channels, r1 - r0, c1 - c0)
            torch.testing.assert_close(part, whole[:, :, r0:r1, c0:c1], atol=1e-5, rtol=0)
