"""Encode once, iterate cheaply: CNN feature maps of the template and of the image, computed
once per pair; at each iteration the image's map is read at the template's grid warped by
the current homography and compared with the template's own features there."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from image_align.homography import corners_to_matrix, sample, template_corners, warp_points
from image_align.networks import GEOMETRY
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
        check_grid(size, stride, grid)
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
        return check_pair_shapes(self.size, input_shape, theta_dim, (self.channels, self.grid,
                                                                     self.grid))

    def encode(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = encode_pair(self.encoder, inputs, self.size, self.normalize)  # (B, 2, K, h, w)
        b = maps.shape[0]
        stride = self.encoder.stride
        template = sample(maps[:, 0], self.points.expand(b, -1, -1), stride)  # (B, K, G*G)
        return template, maps[:, 1].contiguous()

    def features(self, context: tuple[torch.Tensor, torch.Tensor], theta: torch.Tensor
                 ) -> torch.Tensor:
        template, maps = context  # (B, K, G*G), (B, K, h, w)
        b = template.shape[0]
        # the geometry in float32 whatever the autocast: bf16 would put points 0.5 px off
        with torch.autocast(theta.device.type, enabled=False):
            th = clipped_state(theta, b, self.max_theta)
            h = corners_to_matrix(th, self.size)
            pts = warp_points(h, self.points)  # (B, G*G, 2)
            parts = []
            if self.with_maps:
                parts += [template.float(), sample(maps.float(), pts, self.encoder.stride)]
            if self.correlation > 0:
                parts.append(self.correlate(template.float(), maps.float(), h))
        inside = inside_template(pts, self.size)  # (B, G*G)
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


class CorrelationVolumeExtractor(LearnedFeatureExtractor):
    """``encode: inputs (B, 2, S, S) ->`` :class:`VolumeContext` of ``(volume_0, ...,
    volume_{L-1})``, each ``(B, G*G, h_l, w_l)``; ``features(context, theta: (B, 8) px) ->
    (B, C, G, G)`` float32.

    Encode once: one shared :class:`~selfiter.encoders.PyramidEncoder` maps the
    (standardised, as in :class:`WarpedGridExtractor`) template and image to
    ``out_channels`` channels at ``stride`` px per cell. The cosine similarity of the
    template's features at each of its ``grid x grid`` points ``x_j``
    (:func:`grid_points`) with the image's features at every map cell is the
    correlation volume ``(B, G*G, h, w)``; average pooling by 2 gives ``levels`` levels
    (cell ``stride * 2^l`` px), the coarse ones for large displacements (RAFT's
    correlation pyramid).

    Iterate cheaply: at a state, each point's current image position ``p_j = H(x_j)``
    reads, at every level, its ``(2 radius + 1)^2`` similarities one cell apart around
    ``p_j`` (one channel per sample, so a lookup costs no feature channels). The channels
    at each point, in order: the ``levels * (2 radius + 1)^2`` similarities; whether
    ``p_j`` lies inside the image (1); then the geometry the head's fit needs, in px:
    ``p_j`` (2) and the state's 4 corners in the image, ``corner_i + theta_i`` (8, the
    same at every point). States are clipped to ``+-max_theta`` px (default ``size / 2``)
    first; a NaN coordinate counts as 0.

    With ``center``, each map's features have their mean over the map (the template's:
    over its grid points) taken away before the cosine: a part shared by every place
    then adds nothing, so the encoder cannot make everything alike. Without it, a run on
    corners moved up to 40 px collapsed so (its volume's mean similarity rose from 0.04
    to 0.49 and the solver stopped moving, docs/image_align.md).
    """

    #: the trailing channels that carry px coordinates, not similarities: p_j (2), corners (8)
    geometry_channels = GEOMETRY

    def __init__(self, size: int = 128, widths: Sequence[int] = (16, 32, 64, 64),
                 blocks: Sequence[int] = (0, 1, 1, 1), out_channels: int = 32, stride: int = 4,
                 grid: int = 16, levels: int = 4, radius: int = 3, normalize: bool = True,
                 max_theta: float | None = None, center: bool = False) -> None:
        super().__init__()
        check_grid(size, stride, grid)
        if radius < 1:
            raise ValueError(f"radius must be >= 1 (cells each side of a point), got {radius}")
        if not 1 <= levels or size // stride < 2 ** (levels - 1):
            raise ValueError(f"levels must be >= 1 and leave the coarsest level at least one "
                             f"cell ({size} px / stride {stride} / 2^(levels-1)), got {levels}")
        self.size = size
        self.grid = grid
        self.levels = levels
        self.normalize = normalize
        self.center = center
        self.max_theta = float(size / 2 if max_theta is None else max_theta)
        self.encoder = PyramidEncoder(1, widths, blocks, out_channels, stride)
        self.register_buffer("points", grid_points(size, grid), persistent=False)
        r = torch.arange(-radius, radius + 1, dtype=torch.float32)
        oy, ox = torch.meshgrid(r, r, indexing="ij")
        # (W, 2) in cells of a level: the window each point reads around itself
        self.register_buffer("window", torch.stack([ox, oy], -1).reshape(-1, 2), persistent=False)
        self.register_buffer("corners", template_corners(size).reshape(8), persistent=False)

    @property
    def channels(self) -> int:
        """C, the feature channels per grid point."""
        return self.levels * self.window.shape[0] + 1 + self.geometry_channels

    def feature_shape(self, input_shape: tuple[int, ...], theta_dim: int) -> tuple[int, ...]:
        """``(C, grid, grid)`` for inputs ``(2, size, size)`` and ``theta_dim == 8``."""
        return check_pair_shapes(self.size, input_shape, theta_dim, (self.channels, self.grid,
                                                                     self.grid))

    def encode(self, inputs: torch.Tensor) -> VolumeContext:
        maps = encode_pair(self.encoder, inputs, self.size, self.normalize)  # (B, 2, K, h, w)
        b = maps.shape[0]
        template = sample(maps[:, 0], self.points.expand(b, -1, -1), self.encoder.stride)
        image = maps[:, 1]
        if self.center:
            template = template - template.mean(-1, keepdim=True)  # (B, K, G*G)
            image = image - image.mean((-2, -1), keepdim=True)  # (B, K, h, w)
        template = F.normalize(template, dim=1)  # (B, K, G*G)
        image = F.normalize(image, dim=1)  # (B, K, h, w)
        volume = torch.einsum("bkn,bkhw->bnhw", template, image)  # (B, G*G, h, w) in [-1, 1]
        pyramid = [volume]
        for _ in range(1, self.levels):
            pyramid.append(F.avg_pool2d(pyramid[-1], 2))
        return VolumeContext(tuple(pyramid), 1)

    @staticmethod
    def select(context: VolumeContext, index: torch.Tensor) -> VolumeContext:
        """States ``index: (A,)``: a copy of their pairs' volumes, one state per pair."""
        return VolumeContext(tuple(v[index // context.states] for v in context.levels), 1)

    def repeat(self, context: VolumeContext, rows: torch.Tensor) -> VolumeContext:
        """M states per pair reading the pair's volumes, not copies of them (M copies
        of a training batch's volumes were 134 MB per step)."""
        pairs = context.levels[0].shape[0] * context.states
        return VolumeContext(context.levels, context.states * (len(rows) // pairs))

    @staticmethod
    def detach(context: VolumeContext) -> VolumeContext:
        return VolumeContext(tuple(v.detach() for v in context.levels), context.states)

    def features(self, context: VolumeContext, theta: torch.Tensor) -> torch.Tensor:
        b, n = context.levels[0].shape[:2]
        m = context.states
        stride = self.encoder.stride
        w = self.window.shape[0]
        with torch.autocast(theta.device.type, enabled=False):
            th = clipped_state(theta, b * m, self.max_theta)
            pts = warp_points(corners_to_matrix(th, self.size), self.points)  # (B*M, N, 2) px
            parts = []
            for level, volume in enumerate(context.levels):
                # level l's cell j averages level 0's cells 2^l j .. 2^l (j + 1) - 1
                f = 2 ** level
                at = pts[:, :, None] + self.window * (f * stride)  # (B*M, N, W, 2) px
                at = at - (f - 1) / 2 * stride
                # a pair's M states read each point's volume channel in one call
                at = at.reshape(b, m, n, w, 2).transpose(1, 2).reshape(b * n, m * w, 2)
                sims = sample(volume.float().reshape(b * n, 1, *volume.shape[-2:]),
                              at, f * stride)  # (B*N, 1, M*W)
                parts.append(sims.reshape(b, n, m, w).permute(0, 2, 3, 1)
                             .reshape(b * m, w, n))  # (B*M, W, N)
        inside = inside_template(pts, self.size)  # (B*M, N)
        parts += [inside[:, None].float(), pts.transpose(1, 2),
                  (self.corners + th)[:, :, None].expand(b * m, 8, n)]
        return torch.cat(parts, 1).reshape(b * m, self.channels, self.grid, self.grid)


class VolumeContext(NamedTuple):
    """:class:`CorrelationVolumeExtractor`'s context: the pyramid ``levels`` of B pairs
    (each ``(B, G*G, h_l, w_l)``) read by ``B * states`` states, state ``a`` reading pair
    ``a // states``."""

    levels: tuple[torch.Tensor, ...]
    states: int


def clipped_state(theta: torch.Tensor, b: int, max_theta: float) -> torch.Tensor:
    """``theta: (B, 8)`` px as float32, clipped to ``+-max_theta``, NaN as 0 (inf to the
    clip): the features of a broken state stay finite (the solver stops such a sample
    anyway; training must not see NaN). A ``ValueError`` unless theta is ``(b, 8)``."""
    if theta.dim() != 2 or tuple(theta.shape) != (b, 8):
        raise ValueError(f"theta must be (B={b}, 8) corner displacements, got "
                         f"{tuple(theta.shape)}")
    return torch.nan_to_num(theta.float(), nan=0.0).clamp(-max_theta, max_theta)


def inside_template(points: torch.Tensor, size: int) -> torch.Tensor:
    """``points: (B, N, 2)`` px -> ``(B, N)`` bool: within the ``size`` px image (NaN: not)."""
    return ((points >= 0) & (points <= size - 1)).all(-1)


def check_grid(size: int, stride: int, grid: int) -> None:
    """A ``ValueError`` unless a ``size`` px template holds two cells of ``stride`` px and
    the grid at least one point."""
    if size < 2 * stride:
        raise ValueError(f"size must be at least 2 * stride = {2 * stride} px, got {size}")
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")


def check_pair_shapes(size: int, input_shape: tuple[int, ...], theta_dim: int,
                      shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` if the inputs are template/image pairs of ``size`` px and theta is a
    homography's 8 corner coordinates; else a ``ValueError`` that says which key to set."""
    expected = (2, size, size)
    if tuple(input_shape) != expected:
        raise ValueError(f"inputs must be {expected} per sample (template and image of "
                         f"features.params.size = {size} px; set it to the problem's "
                         f"size), got {tuple(input_shape)}")
    if theta_dim != 8:
        raise ValueError(f"a homography has 8 corner coordinates, theta_dim is {theta_dim}")
    return shape


def encode_pair(encoder: PyramidEncoder, inputs: torch.Tensor, size: int, normalize: bool
                ) -> torch.Tensor:
    """``inputs: (B, 2, S, S)`` grey levels (uint8 or float, 0-255) -> ``maps: (B, 2, K, h, w)``,
    the template's and the image's maps by the one shared encoder. With ``normalize``
    each image is standardised first (zero mean, unit variance of its grey levels),
    which removes a global brightness and contrast change before the network sees it."""
    if inputs.dim() != 4 or tuple(inputs.shape[1:]) != (2, size, size):
        raise ValueError(f"inputs must be (B, 2, {size}, {size}) for size {size}, got "
                         f"{tuple(inputs.shape)}")
    b = inputs.shape[0]
    x = inputs.to(torch.float32).reshape(b * 2, 1, size, size) / 255.0
    if normalize:
        mean = x.mean((2, 3), keepdim=True)
        x = (x - mean) / (x - mean).pow(2).mean((2, 3), keepdim=True).add(1e-4).sqrt()
    else:
        x = x - 0.5
    maps = encoder(x)  # (2B, K, h, w)
    return maps.reshape(b, 2, *maps.shape[1:])
