"""The heads that give the 8 corner increments: :class:`AlignHead` regresses them from the
features sampled on the warped grid, :class:`FlowFitHead` fits them to per-point flows read
from a correlation volume (the encoder run once per template and image is the core's
:class:`selfiter.encoders.PyramidEncoder`)."""

from __future__ import annotations

import math

import torch
from torch import nn

from image_align.homography import COORD_LIMIT, corner_step, dlt, warp_points
from selfiter.interfaces import Auxiliary, Regressor

#: the trailing feature channels :class:`FlowFitHead` reads as geometry (px), not looks
GEOMETRY = 10


class AlignHead(Regressor):
    """``features: (B, C, G, G) -> delta_theta: (B, 8)`` px.

    A 1x1 convolution to ``width`` channels (each grid point's comparison of template
    and image features, mixed with the current state's channels), then stride-2 3x3
    convolutions (``width``, then ``2 * width`` channels) while the grid is larger than
    4 x 4, each with a ReLU, and an MLP (``hidden``) over the flattened map to the 8
    increments, times ``output_scale`` (px). The last layer starts at zero, so an
    untrained head keeps the state where it is.
    """

    def __init__(self, feature_shape: tuple[int, ...], theta_dim: int, width: int = 32,
                 hidden: int = 128, output_scale: float = 16.0) -> None:
        super().__init__()
        if len(feature_shape) != 3 or feature_shape[1] != feature_shape[2]:
            raise ValueError(f"feature_shape must be (C, G, G), got {tuple(feature_shape)}")
        if theta_dim != 8:
            raise ValueError(f"a homography has 8 corner coordinates, theta_dim is {theta_dim}")
        self.feature_shape = tuple(feature_shape)
        self.theta_dim = theta_dim
        self.output_scale = output_scale
        c, g = feature_shape[0], feature_shape[1]
        layers: list[nn.Module] = [nn.Conv2d(c, width, 1), nn.ReLU(inplace=True)]
        c = width
        while g > 4:
            c_out = width if c == width and len(layers) == 2 else 2 * width
            layers += [nn.Conv2d(c, c_out, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            c, g = c_out, math.ceil(g / 2)
        self.body = nn.Sequential(*layers)
        last = nn.Linear(hidden, theta_dim)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(c * g * g, hidden), nn.ReLU(inplace=True),
                                 last)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.body(features)) * self.output_scale


class FlowFitHead(Regressor):
    """``features: (B, C, G, G) -> delta_theta: (B, 8)`` px, for the features of
    :class:`~image_align.features.CorrelationVolumeExtractor` (its last 10 channels the
    points' image positions and the state's corners, px).

    A small CNN over the grid (1x1 convolutions to ``width`` channels, a 3x3 one for the
    neighbours' context, each with a ReLU) reads each point's correlation windows and
    gives its flow ``f_j`` (2, times ``output_scale`` px) and a confidence ``w_j`` in (0, 1)
    (0 for a point outside the image). The step is then geometry, not regression: the
    homography ``G`` that best takes every ``p_j`` to ``p_j + f_j`` in weighted least
    squares, and the increment moves the corners by it
    (:func:`~image_align.homography.corner_step`, ``ridge`` pulling a fit without
    support towards no move). 256 points each a pixel off still fit a sub-pixel homography,
    which a regressor of 8 numbers from the whole map learns far more slowly. The last
    layer starts at zero: an untrained head keeps the state where it is.
    """

    def __init__(self, feature_shape: tuple[int, ...], theta_dim: int, width: int = 64,
                 output_scale: float = 8.0, ridge: float = 1e-4) -> None:
        super().__init__()
        if len(feature_shape) != 3 or feature_shape[1] != feature_shape[2]:
            raise ValueError(f"feature_shape must be (C, G, G), got {tuple(feature_shape)}")
        if feature_shape[0] <= GEOMETRY + 1 or feature_shape[1] * feature_shape[2] < 4:
            raise ValueError("feature_shape must have similarities, the inside channel and "
                             f"{GEOMETRY} geometry channels on at least 2 x 2 points (the "
                             f"correlation_volume features), got {tuple(feature_shape)}")
        if theta_dim != 8:
            raise ValueError(f"a homography has 8 corner coordinates, theta_dim is {theta_dim}")
        if not ridge >= 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        self.feature_shape = tuple(feature_shape)
        self.theta_dim = theta_dim
        self.output_scale = output_scale
        self.ridge = ridge
        c = feature_shape[0] - GEOMETRY
        last = nn.Conv2d(width, 3, 1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(
            nn.Conv2d(c, width, 1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), last)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.forward_train(features)[0]

    def forward_train(self, features: torch.Tensor) -> tuple[torch.Tensor, Auxiliary]:
        """The increment ``(B, 8)`` px and the points' flows as the auxiliary prediction:
        given the target increment, point ``j`` should have moved by ``G*(p_j) - p_j``,
        ``G*`` the homography from the current corners to the target's, and a point
        outside the image (no features, weight 0) is not asked anything. 512 targets
        per state instead of 8."""
        b = features.shape[0]
        looks, geometry = features[:, :-GEOMETRY], features[:, -GEOMETRY:].float()
        out = self.body(looks).flatten(2).float()  # (B, 3, N)
        inside = looks[:, -1].flatten(1).float()  # (B, N)
        points = geometry[:, :2].flatten(2).transpose(1, 2)  # (B, N, 2) px
        corners = geometry[:, 2:, 0, 0].reshape(b, 4, 2)  # (B, 4, 2) px
        flow = out[:, :2].transpose(1, 2) * self.output_scale  # (B, N, 2) px
        weight = torch.sigmoid(out[:, 2]) * inside  # (B, N)
        delta = corner_step(points, points + flow, weight, corners, self.ridge)

        def flows(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                g = dlt(corners, corners + target.float().reshape(b, 4, 2))  # (B, 3, 3)
                goal = warp_points(g, points) - points  # (B, N, 2) px
                goal = torch.nan_to_num(goal, nan=0.0).clamp(-COORD_LIMIT, COORD_LIMIT)
            seen = inside[..., None] > 0
            return (torch.where(seen, flow, goal).reshape(b, -1),
                    goal.reshape(b, -1))  # (B, 2N) px each

        return delta, flows
