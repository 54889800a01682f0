"""SIR-Stack (paper Fig. 5): all landmark patches stacked into one CNN's channels."""

from __future__ import annotations

import math

import torch
from torch import nn

from face_landmarks.networks.lan import (LAN_WIDTHS, check_feature_shape, conv_trunk, init_trunk,
                                         regression_head, trunk_side)
from selfiter.interfaces import Regressor


def _stack_params(width: int, n_pts: int, ch: int, side: int, feature_dim: int) -> int:
    """Parameters of the Stack trunk and its fc for conv widths ``(w, 2w, 4w)``."""
    w1, w2, w3 = width, 2 * width, 4 * width
    return ((ch * n_pts * 9 + 1) * w1 + (w1 * 4 + 1) * w2 + (w2 * 4 + 1) * w3
            + (w3 * side * side + 1) * feature_dim * n_pts)


def _lan_params(n_pts: int, ch: int, side: int, feature_dim: int) -> int:
    """Parameters of LAN's L sub-networks (Table 1, with biases)."""
    w1, w2, w3 = LAN_WIDTHS
    return n_pts * ((ch * 9 + 1) * w1 + (w1 * 4 + 1) * w2 + (w2 * 4 + 1) * w3
                    + (w3 * side * side + 1) * feature_dim)


def stack_width(n_pts: int, ch: int, patch_size: int, feature_dim: int) -> int:
    """First conv width ``w`` (the others are ``2w``, ``4w``, Table 1's ratios) whose
    trunk has as many parameters as LAN's L sub-networks, to the nearest integer ``w``."""
    side = trunk_side(patch_size)
    target = _lan_params(n_pts, ch, side, feature_dim)
    # params(w) = 40 w^2 + qb w + qc (the w^2 from conv2 and conv3): the positive root,
    # then whichever neighbouring integer comes closer
    qb = ch * n_pts * 9 + 7 + 4 * side * side * feature_dim * n_pts
    qc = feature_dim * n_pts
    root = (-qb + math.sqrt(qb * qb + 160 * (target - qc))) / 80
    candidates = {max(1, math.floor(root)), max(1, math.ceil(root))}
    return min(candidates, key=lambda w: abs(_stack_params(w, n_pts, ch, side, feature_dim) - target))


class StackNetwork(Regressor):
    """``patches: (B, L, C, P, P) -> delta_theta: (B, theta_dim)``, the SIR-Stack baseline.

    The L patches become the ``L * C`` channels of one image, passed through a
    single CNN of LAN's depth (conv 3x3, pool, conv 2x2, pool, conv 2x2, pool,
    fc to ``L * feature_dim``, ReLU) and the same head (``fc -> hidden``, ReLU,
    ``fc -> theta_dim``, times ``output_scale``). The conv widths ``(w, 2w, 4w)``
    are chosen so the network has as many parameters as
    :class:`LandmarksAttentionNetwork` for the same arguments, as the paper's
    comparison requires: ``w = 20`` for 68 landmarks of 3 x 57 x 57, 3,744,428
    parameters (+0.4%).
    """

    def __init__(self, feature_shape: tuple[int, ...], theta_dim: int, hidden: int = 256,
                 feature_dim: int = 10, output_scale: float = 1.0) -> None:
        super().__init__()
        self.feature_shape = tuple(feature_shape)
        self.theta_dim = theta_dim
        self.output_scale = output_scale
        n_pts, ch, p = check_feature_shape(self.feature_shape)
        w = stack_width(n_pts, ch, p, feature_dim)
        self.widths = (w, 2 * w, 4 * w)
        self.trunk = conv_trunk(ch * n_pts, self.widths, groups=1)
        init_trunk(self.trunk)
        self.fc1 = nn.Linear(self.widths[-1] * trunk_side(p) ** 2, n_pts * feature_dim)
        nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")
        nn.init.zeros_(self.fc1.bias)
        self.head = regression_head(n_pts * feature_dim, hidden, theta_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b = features.shape[0]
        x = self.trunk(features.reshape(b, -1, *features.shape[-2:]))  # (B, 4w, s, s)
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.head(x) * self.output_scale
