"""A generic regressor: a multilayer perceptron on flattened features."""

from __future__ import annotations

import math

import torch
from torch import nn

from selfiter.interfaces import Regressor


class MLPRegressor(Regressor):
    """``features: (B, *feature_shape) -> delta_theta: (B, D)``: Linear+ReLU layers.

    ``output_scale`` multiplies the last layer's output so that a network whose
    activations are O(1) can express increments of the problem's size.
    """

    def __init__(self, feature_shape: tuple[int, ...], theta_dim: int,
                 hidden: list[int] | None = None, output_scale: float = 1.0) -> None:
        super().__init__()
        self.feature_shape = tuple(feature_shape)
        self.theta_dim = theta_dim
        self.output_scale = output_scale
        sizes = [math.prod(self.feature_shape), *(hidden if hidden is not None else [128, 128])]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], theta_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features.flatten(1)) * self.output_scale
