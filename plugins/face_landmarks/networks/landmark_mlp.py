"""The head of the encoded-grid model: each landmark's features reduced by its own
linear map, then one MLP over all landmarks to the increment of every coordinate."""

from __future__ import annotations

import math

import torch
from torch import nn

from face_landmarks.networks.lan import regression_head
from selfiter.interfaces import Regressor


class LandmarkMLP(Regressor):
    """``features: (B, L, F) -> delta_theta: (B, theta_dim)`` frame px.

    Landmark ``l``'s F features go through its own ``F -> reduced`` linear map
    and a ReLU (one einsum for all landmarks); the ``L * reduced`` values then
    through ``hidden`` -> ReLU -> ``theta_dim``, times ``output_scale``. The
    landmarks' reductions are local, the MLP sees the whole face, so a step can
    move each point by what every other point sees.
    """

    def __init__(self, feature_shape: tuple[int, ...], theta_dim: int, reduced: int = 32,
                 hidden: int = 512, output_scale: float = 10.0) -> None:
        super().__init__()
        if len(feature_shape) != 2:
            raise ValueError(f"feature_shape must be (L, F), got {tuple(feature_shape)}")
        self.feature_shape = tuple(feature_shape)
        self.theta_dim = theta_dim
        self.output_scale = output_scale
        n_pts, n_feat = self.feature_shape
        self.reduce_weight = nn.Parameter(torch.randn(n_pts, n_feat, reduced) * math.sqrt(2.0 / n_feat))
        self.reduce_bias = nn.Parameter(torch.zeros(n_pts, reduced))
        self.head = regression_head(n_pts * reduced, hidden, theta_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # (L, B, F) @ (L, F, r): a batched matmul over landmarks (onnxruntime runs it several
        # times faster than the same einsum)
        x = torch.matmul(features.transpose(0, 1), self.reduce_weight).transpose(0, 1)  # (B, L, r)
        x = torch.relu(x + self.reduce_bias)
        return self.head(x.flatten(1)) * self.output_scale
