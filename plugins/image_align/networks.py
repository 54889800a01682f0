"""The head that regresses the 8 corner increments from the features sampled on the warped
grid (the encoder run once per template and image is the core's
:class:`selfiter.encoders.PyramidEncoder`)."""

from __future__ import annotations

import math

import torch
from torch import nn

from selfiter.interfaces import Regressor


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
