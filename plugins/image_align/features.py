"""Encode once, iterate cheaply: CNN feature maps of the template and of the image, computed
once per pair; at each iteration the image's map is read at the template's grid warped by
the current homography and compared with the template's own features there."""

from __future__ import annotations

from typing import Sequence

import torch

from image_align.homography import corners_to_matrix, sample, warp_points
from selfiter.encoders import PyramidEncoder
from selfiter.interfaces import LearnedFeatureExtractor


def grid_points(size: int, grid: int) -> torch.Tensor:
    """``grid x grid`` points on a ``size`` px template, the centres of equal cells:
    ``(grid * grid, 2)`` px (x, y), row-major."""
    c = (torch.arange(grid, dtype=torch.float32) + 0.5) * (size / grid) - 0.5
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xs, ys], -1).reshape(-1, 2)


class WarpedGridExtractor(LearnedFeatureExtractor):
    """``encode: inputs (B, 2, S, S) -> (template_features (B, K, G*G), image_maps (B, K, h, w))``;
    ``features(context, theta: (B, 8) px) -> (B, C, G, G)`` float32 (C: :attr:`channels`).

    ``inputs`` are uint8 (or float) grey levels, channel 0 the template, channel 1 the
    image, each ``size`` px square. One :class:`~selfiter.encoders.PyramidEncoder` (shared
    weights: the two must be described alike to be compared) maps each to K =
    ``out_channels`` channels at ``stride`` px per cell. With ``normalize`` each image is
    first standardised (zero mean, unit variance of its grey levels), which removes a
    global brightness and contrast change before the network sees it.

    At each iteration the image map is read at ``H(x_j)`` for the ``grid x grid``
    template points ``x_j`` (:func:`grid_points`), ``H`` the current homography. The
    channels at each point, in order: with ``with_maps``, the template's features at
    ``x_j`` and the image's at ``H(x_j)`` (K + K); with ``correlation = r > 0``, the
    ``(2r+1)^2`` cosine similarities of :meth:`correlate`; whether ``H(x_j)`` lies
    inside the image (1; outside, the samples are zero); with ``with_theta``, the state
    ``theta / theta_scale`` (8, the same at every point), because the increment in
    corner coordinates that a given misalignment calls for depends on the current warp.
    States are clipped to ``+-max_theta`` px (default ``size / 2``) before the
    homography is formed, so that a wild state still gives finite features (a NaN
    coordinate counts as 0).
    """

    def __init__(self, size: int = 128, widths: Sequence[int] = (16, 32, 48),
                 blocks: Sequence[int] = (0, 1, 1), out_channels: int = 16, stride: int = 4,
                 grid: int = 16, with_theta: bool = True, theta_scale: float = 32.0,
                 normalize: bool = True, max_theta: float | None = None,
                 correlation: int = 2, with_maps: bool = True) -> None:
        super().__init__()
        if size < 2 * stride:
            raise ValueError(f"size must be at least 2 * stride = {2 * stride} px, got {size}")
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        if correlation < 0:
            raise ValueError(f"correlation must be >= 0 (a radius in cells), got {correlation}")
        if correlation == 0 and not with_maps:
            raise ValueError("with correlation 0 and with_maps false there are no features")
        if not theta_scale > 0:
            raise ValueError(f"theta_scale must be > 0 px, got {theta_scale}")
        self.size = size
        self.grid = grid
        self.with_theta = with_theta
        self.theta_scale = float(theta_scale)
        self.normalize = normalize
        self.max_theta = float(size / 2 if max_theta is None else max_theta)
        self.correlation = correlation
        self.with_maps = with_maps
        self.encoder = PyramidEncoder(1, widths, blocks, out_channels, stride)
        # buffers, so they follow the module's device; not saved: they are functions of the params
        self.register_buffer("points", grid_points(size, grid), persistent=False)
        r = torch.arange(-correlation, correlation + 1, dtype=torch.float32) * stride
        oy, ox = torch.meshgrid(r, r, indexing="ij")
        # (W, 2) template px: the window of offsets the correlation compares at, one cell apart
        self.register_buffer("window", torch.stack([ox, oy], -1).reshape(-1, 2), persistent=False)

    @property
    def channels(self) -> int:
        """C, the feature channels per grid point."""
        return (2 * self.encoder.out_channels * self.with_maps + self.window.shape[0]
                * (self.correlation > 0) + 1 + 8 * self.with_theta)

    def feature_shape(self, input_shape: tuple[int, ...], theta_dim: int) -> tuple[int, ...]:
        """``(C, grid, grid)`` for inputs ``(2, size, size)`` and ``theta_dim == 8``."""
        expected = (2, self.size, self.size)
        if tuple(input_shape) != expected:
            raise ValueError(f"inputs must be {expected} per sample (template and image of "
                             f"features.params.size = {self.size} px; set it to the problem's "
                             f"size), got {tuple(input_shape)}")
        if theta_dim != 8:
            raise ValueError(f"a homography has 8 corner coordinates, theta_dim is {theta_dim}")
        return (self.channels, self.grid, self.grid)

    def encode(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if inputs.dim() != 4 or tuple(inputs.shape[1:]) != (2, self.size, self.size):
            raise ValueError(f"inputs must be (B, 2, {self.size}, {self.size}) for size "
                             f"{self.size}, got {tuple(inputs.shape)}")
        b = inputs.shape[0]
        x = inputs.to(torch.float32).reshape(b * 2, 1, self.size, self.size) / 255.0
        if self.normalize:
            mean = x.mean((2, 3), keepdim=True)
            x = (x - mean) / (x - mean).pow(2).mean((2, 3), keepdim=True).add(1e-4).sqrt()
        else:
            x = x - 0.5
        maps = self.encoder(x)  # (2B, K, h, w)
        maps = maps.reshape(b, 2, *maps.shape[1:])
        stride = self.encoder.stride
        template = sample(maps[:, 0], self.points.expand(b, -1, -1), stride)  # (B, K, G*G)
        return template, maps[:, 1].contiguous()

    def features(self, context: tuple[torch.Tensor, torch.Tensor], theta: torch.Tensor
                 ) -> torch.Tensor:
        template, maps = context  # (B, K, G*G), (B, K, h, w)
        b = template.shape[0]
        if theta.dim() != 2 or tuple(theta.shape) != (b, 8):
            raise ValueError(f"theta must be (B={b}, 8) corner displacements, got "
                             f"{tuple(theta.shape)}")
        # the geometry in float32 whatever the autocast: bf16 would put points 0.5 px off
        with torch.autocast(theta.device.type, enabled=False):
            # NaN to 0 and inf to the clip: the features of a broken state stay finite (the
            # solver stops such a sample anyway; training must not see NaN)
            th = torch.nan_to_num(theta.float(), nan=0.0).clamp(-self.max_theta, self.max_theta)
            h = corners_to_matrix(th, self.size)
            pts = warp_points(h, self.points)  # (B, G*G, 2)
            parts = []
            if self.with_maps:
                parts += [template.float(), sample(maps.float(), pts, self.encoder.stride)]
            if self.correlation > 0:
                parts.append(self.correlate(template.float(), maps.float(), h))
        inside = ((pts >= 0) & (pts <= self.size - 1)).all(-1)  # (B, G*G); NaN: outside
        parts.append(inside[:, None].float())
        if self.with_theta:
            parts.append((th / self.theta_scale)[:, :, None].expand(b, 8, template.shape[-1]))
        return torch.cat(parts, 1).reshape(b, self.channels, self.grid, self.grid)

    def correlate(self, template: torch.Tensor, maps: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The cosine similarity of each grid point's template features ``(B, K, G*G)`` with
        the image's at ``H(x_j + w)`` for the ``W`` offsets ``w`` of the window (one map
        cell apart): ``(B, W, G*G)`` in [-1, 1]. Where the similarity peaks says how far,
        and which way, the point is off; a regressor reads that far more easily than it
        learns to compare two feature vectors itself (the cost volume of optical flow)."""
        b, k, n = template.shape
        w = self.window.shape[0]
        pts = warp_points(h, (self.points[None] + self.window[:, None]).reshape(-1, 2))
        image = sample(maps, pts, self.encoder.stride).reshape(b, k, w, n)  # (B, K, W, G*G)
        t = torch.nn.functional.normalize(template, dim=1)[:, :, None]  # (B, K, 1, G*G)
        return (torch.nn.functional.normalize(image, dim=1) * t).sum(1)  # (B, W, G*G)
