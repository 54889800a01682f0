"""Encode once, iterate cheaply: a CNN encoding of the face frame, computed once per face,
sampled bilinearly on a small grid around every current landmark at each iteration."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from selfiter.encoders import PyramidEncoder
from selfiter.interfaces import LearnedFeatureExtractor


class EncodedGridExtractor(LearnedFeatureExtractor):
    """``encode: frames (B, C, S, S) uint8 -> maps (B, K, S/stride, S/stride)``;
    ``features(maps, theta: (B, 2L)) -> (B, L, K * grid * grid)`` float32.

    The encoder is the core's :class:`~selfiter.encoders.PyramidEncoder`
    (``widths``, ``blocks``, ``block``, ``out_channels`` = K, ``stride``) over frames of
    ``input_size`` px (the problem's ``frame_size``), grey levels mapped to
    ``x / 255 - 0.5``. Landmark ``l`` reads the map at a ``grid x grid`` square of
    points ``spacing`` frame px apart centred on it (pixel column ``c`` centred at
    ``x = c``); map cell ``j`` sits at frame px ``j * stride``. Outside the map
    the samples are zero. One batched bilinear gather reads every landmark of every face.
    """

    def __init__(self, input_size: int = 128, in_channels: int = 3,
                 widths: Sequence[int] = (24, 48, 64, 96), blocks: Sequence[int] = (0, 1, 1, 1),
                 out_channels: int = 48, stride: int = 4, grid: int = 3,
                 spacing: float = 4.0, block: str = "residual") -> None:
        super().__init__()
        if input_size < 2 * stride:
            raise ValueError(f"input_size must be at least 2 * stride = {2 * stride}, got {input_size}")
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        if not spacing > 0:
            raise ValueError(f"spacing must be > 0, got {spacing}")
        self.input_size = input_size
        self.in_channels = in_channels
        self.grid = grid
        self.spacing = float(spacing)
        self.encoder = PyramidEncoder(in_channels, widths, blocks, out_channels, stride, block)
        offsets = (torch.arange(grid, dtype=torch.float32) - (grid - 1) / 2) * self.spacing
        oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
        # (G*G, 2) frame px from the landmark; a buffer, so it follows the module's device
        self.register_buffer("offsets", torch.stack((ox, oy), -1).reshape(-1, 2), persistent=False)

    def feature_shape(self, input_shape: tuple[int, ...], theta_dim: int) -> tuple[int, ...]:
        """``(L, K * grid * grid)`` for frames ``(C, S, S)`` with ``S == input_size``."""
        expected = (self.in_channels, self.input_size, self.input_size)
        if tuple(input_shape) != expected:
            raise ValueError(f"frames must be {expected} per sample (input_size {self.input_size}: "
                             f"set the problem's frame_size to match), got {tuple(input_shape)}")
        if theta_dim % 2:
            raise ValueError(f"theta_dim must be even (x, y per landmark), got {theta_dim}")
        return (theta_dim // 2, self.encoder.out_channels * self.grid ** 2)

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() != 4 or tuple(inputs.shape[1:]) != (self.in_channels, self.input_size,
                                                             self.input_size):
            raise ValueError(f"frames must be (B, {self.in_channels}, {self.input_size}, "
                             f"{self.input_size}) for input_size {self.input_size}, got "
                             f"{tuple(inputs.shape)}")
        x = inputs.to(torch.float32).mul(1.0 / 255.0).sub(0.5)
        return self.encoder(x.contiguous(memory_format=torch.channels_last))

    def features(self, context: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        maps = context  # (B, K, h, w)
        b, k, h, w = maps.shape
        if theta.dim() != 2 or theta.shape[0] != b or theta.shape[1] % 2:
            raise ValueError(f"theta must be (B={b}, 2L), got {tuple(theta.shape)}")
        n_pts = theta.shape[1] // 2
        pts = theta.to(maps.dtype).reshape(b, n_pts, 1, 2)
        grid = (pts + self.offsets.to(maps.dtype)) / self.encoder.stride  # (B, L, G*G, 2) map cells
        out = bilinear_gather(maps, grid.reshape(b, -1, 2))  # (B, L*G*G, K)
        return out.reshape(b, n_pts, -1, k).transpose(2, 3).reshape(b, n_pts, -1).float()


def bilinear_gather(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``maps: (B, K, h, w)`` read at ``points: (B, N, 2)`` (x, y in cells, cell ``(i, j)``
    centred at ``x = j, y = i``) -> ``(B, N, K)``, bilinear, zero outside the map.

    The same values as ``F.grid_sample(..., align_corners=True, padding_mode="zeros")``,
    as one gather of the four corners from the channels-last map with a border of zero
    cells: a corner outside the map is clamped onto that border and reads zero, so no
    validity masks are needed. onnxruntime runs this several times faster than its
    GridSample (and than four masked gathers); PyTorch about as fast."""
    b, k, h, w = maps.shape
    padded = F.pad(maps, (1, 1, 1, 1))  # (B, K, h+2, w+2), cell (i, j) now at (i+1, j+1)
    hp, wp = h + 2, w + 2
    # (B*hp*wp, K): row b*hp*wp + i*wp + j is padded cell (i, j) of map b
    flat = padded.permute(0, 2, 3, 1).reshape(b * hp * wp, k)
    first = (torch.arange(b, device=maps.device) * (hp * wp)).view(b, 1, 1)  # (B, 1, 1)
    x, y = points[..., 0] + 1, points[..., 1] + 1  # (B, N) padded cells
    x0, y0 = x.floor(), y.floor()
    fx, fy = (x - x0).unsqueeze(-1), (y - y0).unsqueeze(-1)  # (B, N, 1)
    corner_x = torch.tensor([0.0, 1.0, 0.0, 1.0], device=maps.device, dtype=x.dtype)
    corner_y = torch.tensor([0.0, 0.0, 1.0, 1.0], device=maps.device, dtype=x.dtype)
    cx = (x0.unsqueeze(-1) + corner_x).clamp(0, wp - 1)  # (B, N, 4)
    cy = (y0.unsqueeze(-1) + corner_y).clamp(0, hp - 1)
    index = first + (cy * wp + cx).long()  # (B, N, 4)
    weight = (corner_x * fx + (1 - corner_x) * (1 - fx)) * (corner_y * fy + (1 - corner_y) * (1 - fy))
    return (flat[index] * weight.unsqueeze(-1)).sum(2)  # (B, N, 4, K) -> (B, N, K)
