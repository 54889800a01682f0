"""The learned parts: a small CNN run once per template and per image, and the head that
regresses the 8 corner increments from the features sampled on the warped grid."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from selfiter.interfaces import Regressor


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution (padding 1), batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Encoder(nn.Module):
    """``images: (B, 1, S, S)`` standardised grey -> ``maps: (B, out_channels, S/stride, S/stride)``.

    Stage ``i`` is a stride-2 3x3 convolution to ``widths[i]`` channels and then
    ``blocks[i]`` more 3x3 convolutions, so it sees the image at stride ``2^(i+1)``;
    map cell ``j`` is centred on input px ``j * 2^(i+1)``. Every stage at or below the
    output ``stride`` is projected by a 1x1 convolution to ``out_channels``, upsampled
    bilinearly and summed (a small feature pyramid): the map keeps the fine detail that
    sub-pixel alignment needs and the deep stages' receptive field, which the large
    displacements need.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 48), blocks: Sequence[int] = (0, 1, 1),
                 out_channels: int = 16, stride: int = 4) -> None:
        super().__init__()
        if not widths or len(blocks) != len(widths):
            raise ValueError(f"blocks ({list(blocks)}) needs one count per stage of widths "
                             f"({list(widths)})")
        levels = {2 ** (i + 1): i for i in range(len(widths))}
        if stride not in levels:
            raise ValueError(f"stride must be one of {sorted(levels)} for {len(widths)} stages, "
                             f"got {stride}")
        self.stride = stride
        self.first_out = levels[stride]
        self.out_channels = out_channels
        stages, c = [], 1
        for w, n in zip(widths, blocks):
            stages.append(nn.Sequential(conv_bn_relu(c, w, 2), *(conv_bn_relu(w, w) for _ in range(n))))
            c = w
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList(nn.Conv2d(w, out_channels, 1) for w in widths[self.first_out:])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x, maps = images, []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= self.first_out:
                maps.append(x)
        out = self.lateral[-1](maps[-1])
        for lat, m in zip(reversed(self.lateral[:-1]), reversed(maps[:-1])):
            out = lat(m) + F.interpolate(out, size=m.shape[-2:], mode="bilinear", align_corners=False)
        return out


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
