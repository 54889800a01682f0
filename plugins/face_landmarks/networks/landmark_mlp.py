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
    and a ReLU (one batched matmul for all landmarks); the ``L * reduced`` values then
    through ``hidden`` -> ReLU -> ``theta_dim``, times ``output_scale``. The
    landmarks' reductions are local, the MLP sees the whole face, so a step can
    move each point by what every other point sees.

    With ``local > 0`` (``theta_dim = 2 L``: an x, y per landmark), each landmark's
    ``reduced`` values also go through its own ``reduced -> local -> ReLU -> 2`` head,
    whose move of that landmark is added to the MLP's: a step the landmark's own
    surroundings decide, past the MLP's ``hidden`` bottleneck. Its last layer starts at
    zero, so a model given a local head starts as the model it was trained without
    (``train.init`` with ``train.init_partial``).
    """

    def __init__(self, feature_shape: tuple[int, ...], theta_dim: int, reduced: int = 32,
                 hidden: int = 512, output_scale: float = 10.0, local: int = 0) -> None:
        super().__init__()
        if len(feature_shape) != 2:
            raise ValueError(f"feature_shape must be (L, F), got {tuple(feature_shape)}")
        n_pts, n_feat = feature_shape
        if local < 0:
            raise ValueError(f"local must be >= 0 (0: no local head), got {local}")
        if local and theta_dim != 2 * n_pts:
            raise ValueError(f"local: a per-landmark head moves x, y of each of the {n_pts} "
                             f"landmarks, so theta_dim must be {2 * n_pts}, got {theta_dim}")
        self.feature_shape = tuple(feature_shape)
        self.theta_dim = theta_dim
        self.output_scale = output_scale
        self.reduce_weight = nn.Parameter(torch.randn(n_pts, n_feat, reduced) * math.sqrt(2.0 / n_feat))
        self.reduce_bias = nn.Parameter(torch.zeros(n_pts, reduced))
        self.head = regression_head(n_pts * reduced, hidden, theta_dim)
        self.local = local
        if local:
            self.local_weight = nn.Parameter(torch.randn(n_pts, reduced, local) * math.sqrt(2.0 / reduced))
            self.local_bias = nn.Parameter(torch.zeros(n_pts, local))
            self.local_out = nn.Parameter(torch.zeros(n_pts, local, 2))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # (L, B, F) @ (L, F, r): a batched matmul over landmarks (onnxruntime runs it several
        # times faster than the same einsum)
        x = torch.relu(torch.matmul(features.transpose(0, 1), self.reduce_weight)
                       + self.reduce_bias.unsqueeze(1))  # (L, B, r)
        out = self.head(x.transpose(0, 1).flatten(1))  # (B, theta_dim)
        if self.local:
            h = torch.relu(torch.matmul(x, self.local_weight) + self.local_bias.unsqueeze(1))
            out = out + torch.matmul(h, self.local_out).transpose(0, 1).flatten(1)  # (B, L*2)
        return out * self.output_scale
