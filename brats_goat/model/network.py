"""The Multimodal Vision-Transformer Autoencoder (MViT-AE).

Early fusion: each token is one 24x24 patch of all four modalities. The whole token
sequence is flattened into a single code (512-d by default): this hard bottleneck is what
keeps the model from copying a tumour through, so the tumour shows up in the residual.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ModelConfig:
    """MViT-AE architecture. Defaults are the paper's (patch 24 on 240x240, width 512...)."""

    image_size: int = 240
    in_channels: int = 4
    patch_size: int = 24
    width: int = 512
    depth: int = 6
    heads: int = 8
    mlp_dim: int = 1024
    bottleneck_dim: int = 512
    dropout: float = 0.0
    #: Code reshaped to (bottleneck_dim / seed_size**2) channels x seed_size x seed_size.
    seed_size: int = 8
    #: Channels of the transposed-convolution stages, from coarse to fine.
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    #: Add a learned embedding of which modalities are present to every token, so one
    #: model serves any subset of sequences (trained with modality dropout). Absent
    #: modalities enter as zero images. Off in checkpoints made before it existed.
    modality_mask: bool = False
    #: ``flat`` (paper): all tokens flattened into one ``bottleneck_dim`` code, decoded from
    #: a ``seed_size`` grid. ``tokens``: every patch token keeps its own ``token_dim`` code
    #: and the decoder starts from the token grid, so the code stays spatially aligned and
    #: the reconstruction sharper; meant to be trained as a denoiser (``noise_std``) so
    #: that it learns to replace anomalies rather than copy them.
    bottleneck: str = "flat"
    token_dim: int = 8

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError("image_size must be a multiple of patch_size")
        if self.width % self.heads:
            raise ValueError("width must be divisible by heads")
        if self.bottleneck not in ("flat", "tokens"):
            raise ValueError(f"bottleneck must be 'flat' or 'tokens', not {self.bottleneck!r}")
        if self.bottleneck == "flat" and self.bottleneck_dim % (self.seed_size**2):
            raise ValueError("bottleneck_dim must be divisible by seed_size**2")
        if self.bottleneck == "tokens" and self.image_size % 2 ** len(self.decoder_channels):
            raise ValueError(
                "with a token bottleneck, image_size must be divisible by "
                "2 ** len(decoder_channels)"
            )

    @property
    def n_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class MViTAE(nn.Module):
    """ViT encoder -> bottleneck (flattened, or per token) -> transposed-convolution decoder."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Conv2d(
            cfg.in_channels, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size
        )
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.n_tokens, cfg.width))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        # Zero-initialised: a model fine-tuned from a checkpoint without it starts out
        # computing exactly what that checkpoint computed.
        self.modality_embed: nn.Linear | None = None
        if cfg.modality_mask:
            self.modality_embed = nn.Linear(cfg.in_channels, cfg.width, bias=False)
            nn.init.zeros_(self.modality_embed.weight)
        layer = nn.TransformerEncoderLayer(
            d_model=cfg.width,
            nhead=cfg.heads,
            dim_feedforward=cfg.mlp_dim,
            dropout=cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)
        self.tokens = cfg.bottleneck == "tokens"
        if self.tokens:
            self.to_code = nn.Linear(cfg.width, cfg.token_dim)
            self.seed_size = cfg.image_size // 2 ** len(cfg.decoder_channels)
            c_in = cfg.token_dim
        else:
            self.to_code = nn.Linear(cfg.n_tokens * cfg.width, cfg.bottleneck_dim)
            self.seed_size = cfg.seed_size
            c_in = cfg.bottleneck_dim // cfg.seed_size**2
        stages: list[nn.Module] = []
        for c_out in cfg.decoder_channels:
            stages += [
                nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        stages.append(nn.Conv2d(c_in, cfg.in_channels, kernel_size=3, padding=1))
        self.decoder = nn.Sequential(*stages)
        self.decoded_size = self.seed_size * 2 ** len(cfg.decoder_channels)
        if self.decoded_size < cfg.image_size:
            raise ValueError(
                f"decoder reaches {self.decoded_size} px, less than image_size {cfg.image_size}"
            )

    def encode(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """``present``: (B, C) 1/0 per modality; None means all present."""
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        if self.modality_embed is not None:
            if present is None:
                present = x.new_ones(x.shape[0], self.cfg.in_channels)
            tokens = tokens + self.modality_embed(present.to(tokens.dtype))[:, None, :]
        tokens = self.norm(self.encoder(tokens))
        if self.tokens:
            return self.to_code(tokens)  # (B, n_tokens, token_dim)
        return self.to_code(tokens.flatten(1))

    def decode(self, code: torch.Tensor, window: Window | None = None) -> torch.Tensor:
        """The image of ``code``; with ``window`` ((row0, row1), (col0, col1) in image
        pixels) only that part of it, computed from the part of every decoder stage it
        depends on: the same values as the whole image's crop, for the work of its area
        (inference restricts it to the brain's box, issue 18)."""
        s = self.seed_size
        if self.tokens:
            g = self.cfg.image_size // self.cfg.patch_size
            grid = code.transpose(1, 2).reshape(code.shape[0], -1, g, g)
            # The token grid (10x10 for 240/24) rarely divides into a power-of-two decoder;
            # a bilinear resize to the seed grid keeps every code at its place.
            seed = F.interpolate(grid, size=(s, s), mode="bilinear", align_corners=False)
        else:
            seed = code.view(code.shape[0], -1, s, s)
        # The decoder may overshoot (8 * 2**5 = 256 px); the image is its centre.
        margin = (self.decoded_size - self.cfg.image_size) // 2
        size = self.cfg.image_size
        if window is None:
            window = ((0, size), (0, size))
        rows, cols = ((a + margin, b + margin) for a, b in window)
        return decode_window(list(self.decoder), seed, rows, cols)

    def forward(
        self, x: torch.Tensor, present: torch.Tensor | None = None, window: Window | None = None
    ) -> torch.Tensor:
        return self.decode(self.encode(x, present), window)


#: A part of an image: ((row0, row1), (col0, col1)), stops excluded.
Window = tuple[tuple[int, int], tuple[int, int]]


def needed_input(layer: nn.Module, span: tuple[int, int], n: int) -> tuple[int, int]:
    """The input rows (or columns) of ``layer``, of ``n``, that its output ``span`` reads."""
    a, b = span
    if isinstance(layer, nn.ConvTranspose2d):  # kernel 4, stride 2, padding 1
        return max(0, (a - 1) // 2), min(n, b // 2 + 1)
    if isinstance(layer, nn.Conv2d):  # kernel 3, padding 1
        return max(0, a - 1), min(n, b + 1)
    return a, b  # pointwise


def decode_window(
    layers: list[nn.Module], seed: torch.Tensor, rows: tuple[int, int], cols: tuple[int, int]
) -> torch.Tensor:
    """Run ``layers`` on ``seed`` for the output ``rows`` x ``cols`` only.

    Each layer gets the smallest input span its output span reads (``needed_input``, worked
    back from the last layer), so every output pixel sums exactly what it does on the whole
    grid; a border the crop creates only holds pixels that are cut away after.
    """
    sizes = [seed.shape[-1]]
    for layer in layers:
        sizes.append(sizes[-1] * 2 if isinstance(layer, nn.ConvTranspose2d) else sizes[-1])
    spans = [(rows, cols)]
    for layer, n in zip(reversed(layers), reversed(sizes[:-1]), strict=True):
        r, c = spans[0]
        spans.insert(0, (needed_input(layer, r, n), needed_input(layer, c, n)))
    (r0, r1), (c0, c1) = spans[0]
    h, origin = seed[:, :, r0:r1, c0:c1], (r0, c0)
    for layer, (r, c) in zip(layers, spans[1:], strict=True):
        h = layer(h)
        if isinstance(layer, nn.ConvTranspose2d):
            origin = (2 * origin[0], 2 * origin[1])
        h = h[:, :, r[0] - origin[0] : r[1] - origin[0], c[0] - origin[1] : c[1] - origin[1]]
        origin = (r[0], c[0])
    return h


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


#: Named architectures. ``paper`` is the published one (40.8M parameters, ~82 MB in fp16,
#: over the 60 MB a shipped file may weigh); ``small`` keeps its design at half the width.
MODEL_PRESETS: dict[str, ModelConfig] = {
    "paper": ModelConfig(),
    "small": ModelConfig(
        width=256, depth=4, heads=8, mlp_dim=512, decoder_channels=(128, 64, 32, 16, 16)
    ),
    # Same encoder as ``small``; an 8-d code per 24-px token (800 numbers per slice instead
    # of 512, but each tied to its place) and a 4-stage decoder from a 15x15 grid.
    "small-tokens": ModelConfig(
        width=256,
        depth=4,
        heads=8,
        mlp_dim=512,
        bottleneck="tokens",
        token_dim=8,
        decoder_channels=(128, 64, 32, 16),
    ),
    "tiny": ModelConfig(
        image_size=48,
        patch_size=8,
        width=32,
        depth=1,
        heads=2,
        mlp_dim=64,
        bottleneck_dim=64,
        seed_size=4,
        decoder_channels=(16, 8, 8, 8),
    ),
}
