"""Image patches around every landmark, sampled in one batched ``grid_sample``."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from selfiter.interfaces import FeatureExtractor

#: added to a patch's standard deviation (grey levels, 0-255) so that a flat patch,
#: e.g. one wholly outside the frame, standardises to zeros instead of NaN
_STD_EPS = 1e-2


class PatchExtractor(FeatureExtractor):
    """``images: (B, C, H, W)``, ``theta: (B, 2L) -> patches: (B, L, C, P, P)`` float32.

    Each patch is a ``P x P`` grid of bilinear samples, ``spacing`` frame pixels
    apart, centred on its landmark: sample ``(i, j)`` of landmark ``l`` sits at
    ``x = x_l + (j - (P-1)/2) * spacing``, ``y = y_l + (i - (P-1)/2) * spacing``,
    with pixel row ``r``, column ``c`` centred at ``x = c``, ``y = r``. So with odd
    ``P`` and ``spacing = 1``, a patch centred on an integer position is exactly
    the crop of the image around it. Outside the image the samples are black.

    Images are uint8 (0-255); float images are taken on the same 0-255 scale.
    ``normalize``: ``"unit"`` maps grey levels to ``x / 255 - 0.5``;
    ``"standardize"`` gives each patch (all its channels together) zero mean
    and unit standard deviation.
    """

    def __init__(self, patch_size: int = 57, spacing: float = 1.0,
                 normalize: Literal["unit", "standardize"] = "unit") -> None:
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}")
        if not spacing > 0:
            raise ValueError(f"spacing must be > 0, got {spacing}")
        if normalize not in ("unit", "standardize"):
            raise ValueError(f"normalize must be 'unit' or 'standardize', got {normalize!r}")
        self.patch_size = patch_size
        self.spacing = spacing
        self.normalize = normalize

    def feature_shape(self, input_shape: tuple[int, ...], theta_dim: int) -> tuple[int, ...]:
        """``(L, C, P, P)`` for images of one-sample shape ``(C, H, W)`` and ``theta_dim = 2L``."""
        if len(input_shape) != 3:
            raise ValueError(f"images must be (C, H, W) per sample, got {tuple(input_shape)}")
        if theta_dim % 2:
            raise ValueError(f"theta_dim must be even (x, y per landmark), got {theta_dim}")
        return (theta_dim // 2, input_shape[0], self.patch_size, self.patch_size)

    def features(self, inputs: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        images = inputs
        if images.dim() != 4:
            raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
        b, c, h, w = images.shape
        if theta.dim() != 2 or theta.shape[0] != b or theta.shape[1] % 2:
            raise ValueError(f"theta must be (B={b}, 2L), got {tuple(theta.shape)}")
        n_pts, p = theta.shape[1] // 2, self.patch_size
        pts = theta.to(torch.float32).reshape(b, n_pts, 1, 1, 2)
        offsets = torch.arange(p, device=theta.device, dtype=torch.float32) - (p - 1) / 2
        offsets = offsets * self.spacing  # (P,) px from the landmark
        oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
        grid = pts + torch.stack((ox, oy), -1)  # (B, L, P, P, 2) in pixels
        # align_corners=True: -1 and +1 are the centres of the first and last pixels.
        scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=theta.device)
        grid = (grid * scale - 1.0).reshape(b, n_pts * p, p, 2)
        # Landmarks are stacked along the output's height so one call samples them all.
        out = F.grid_sample(images.to(torch.float32), grid, mode="bilinear",
                            padding_mode="zeros", align_corners=True)  # (B, C, L*P, P)
        out = out.reshape(b, c, n_pts, p, p).permute(0, 2, 1, 3, 4).contiguous()  # (B, L, C, P, P)
        if self.normalize == "unit":
            # after sampling, so that outside the frame reads as black (-0.5), not grey
            return out.mul_(1.0 / 255.0).sub_(0.5)
        mean = out.mean((2, 3, 4), keepdim=True)
        std = out.std((2, 3, 4), keepdim=True, correction=0)
        return (out - mean) / (std + _STD_EPS)
