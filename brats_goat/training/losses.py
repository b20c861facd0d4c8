"""Reconstruction loss of the paper: MSE + w * (1 - SSIM), SSIM with an 11-px Gaussian window."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_window(size: int, sigma: float, channels: int) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    window = torch.outer(g, g)
    return window.expand(channels, 1, size, size).contiguous()


def ssim_map(
    x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, data_range: float
) -> torch.Tensor:
    """Per-pixel SSIM, (B, C, X, Y) (Wang et al. 2004 constants)."""
    c = x.shape[1]
    pad = window.shape[-1] // 2
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x = F.conv2d(x, window, padding=pad, groups=c)
    mu_y = F.conv2d(y, window, padding=pad, groups=c)
    sxx = F.conv2d(x * x, window, padding=pad, groups=c) - mu_x**2
    syy = F.conv2d(y * y, window, padding=pad, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, window, padding=pad, groups=c) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return num / den


def ssim(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, data_range: float) -> torch.Tensor:
    """Mean SSIM over batch, channels and pixels."""
    return ssim_map(x, y, window, data_range).mean()


def spatial_mean(values: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """(B, C, X, Y) -> (B, C): mean over the pixels that count (all when ``keep`` is None)."""
    if keep is None:
        return values.mean(dim=(2, 3))
    w = keep.to(values.dtype)
    return (values * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3)).clamp_min(1)


class ReconstructionLoss(torch.nn.Module):
    """MSE + ``ssim_weight`` x (1 - SSIM); SSIM's data range is the z-score clip range."""

    window: torch.Tensor  # a buffer (registered below): it follows the module to its device

    def __init__(
        self, channels: int, window: int, sigma: float, ssim_weight: float, data_range: float
    ) -> None:
        super().__init__()
        self.register_buffer("window", gaussian_window(window, sigma, channels))
        self.ssim_weight = ssim_weight
        self.data_range = data_range

    def forward(
        self,
        recon: torch.Tensor,
        target: torch.Tensor,
        present: torch.Tensor | None = None,
        ignore: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``present`` (B, C): only the modalities the model was shown count (dropout, and
        those the data lacks: a zero image is not a scan to reconstruct). ``ignore``
        (B, 1, X, Y): voxels left out (known non-tumour lesions, grown past the SSIM window).
        """
        recon = recon.float()
        if present is None and ignore is None:
            mse = F.mse_loss(recon, target)
            return mse + self.ssim_weight * (1 - ssim(recon, target, self.window, self.data_range))
        w = recon.new_ones(recon.shape[:2]) if present is None else present.to(recon.dtype)
        n = w.sum().clamp_min(1)
        keep = None if ignore is None else ~ignore
        mse = spatial_mean((recon - target) ** 2, keep).mul(w).sum() / n
        s_map = ssim_map(recon, target, self.window, self.data_range)
        s = spatial_mean(s_map, keep).mul(w).sum() / n
        return mse + self.ssim_weight * (1 - s)
