"""Helpers of the image_align tests: textured synthetic photos (no data needed)."""

from __future__ import annotations

import torch

from image_align.synthesis import gaussian_blur


def synthetic_photos(n: int, side: int, seed: int = 0, sigma: float = 2.5) -> torch.Tensor:
    """``(n, side, side)`` uint8: blurred white noise stretched to [0, 255], a texture with
    detail at the scales a small template needs (so that alignment is well posed)."""
    g = torch.Generator().manual_seed(seed)
    x = gaussian_blur(torch.randn(n, side, side, generator=g), torch.full((n,), sigma), sigma)
    lo, hi = x.amin((1, 2), keepdim=True), x.amax((1, 2), keepdim=True)
    return ((x - lo) / (hi - lo) * 255).round().to(torch.uint8)
