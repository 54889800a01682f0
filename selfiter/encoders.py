"""Generic learned encoders: a compact CNN that turns an image into a dense feature map,
for feature extractors that encode each input once and sample the map at every
solver iteration (see :class:`selfiter.interfaces.LearnedFeatureExtractor`)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution (padding 1), batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """``x + relu(bn(conv(relu(bn(conv(x))))))``: two 3x3 convolutions, width kept."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(c, c), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c))
        nn.init.zeros_(self.body[-1].weight)  # starts as the identity: deep stacks train at once

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class SeparableResidual(nn.Module):
    """``x + body(x)``, then ReLU, where ``body`` is two depthwise-separable 3x3
    convolutions (a depthwise 3x3, then a 1x1 across channels, each with batch norm), width
    kept: the receptive field of :class:`Residual` for about ``(9 + c) / (9 c)`` of its
    multiply-adds (a fifth at 48 channels)."""

    def __init__(self, c: int) -> None:
        super().__init__()

        def separable(relu: bool) -> list[nn.Module]:
            return [nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True), nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c),
                    *([nn.ReLU(inplace=True)] if relu else [])]

        self.body = nn.Sequential(*separable(True), *separable(False))
        nn.init.zeros_(self.body[-1].weight)  # starts as the identity, like Residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


#: the residual blocks :class:`PyramidEncoder` can stack, by name
BLOCKS = {"residual": Residual, "separable": SeparableResidual}


class PyramidEncoder(nn.Module):
    """``images: (B, in_channels, H, W)`` float (about unit scale) ->
    ``maps: (B, out_channels, H/stride, W/stride)``.

    ``len(widths)`` stages, stage ``i`` a stride-2 3x3 convolution to
    ``widths[i]`` channels and then ``blocks[i]`` residual blocks (``block``: a name
    of :data:`BLOCKS`, ``residual`` or the cheaper ``separable``), so stage ``i``
    sees the image at stride ``2^(i+1)``; map cell ``j`` is centred on input
    pixel ``j * stride``. The output is at ``stride`` (a power of two, at most
    the deepest stage's): every stage at or below that resolution is projected
    by a 1x1 convolution to ``out_channels``, upsampled bilinearly to it and
    summed (a top-down feature pyramid), so the map keeps fine detail where it
    is sampled and the deep stages' large receptive field.
    """

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = (24, 48, 64, 96),
                 blocks: Sequence[int] = (0, 1, 1, 1), out_channels: int = 48,
                 stride: int = 4, block: str = "residual") -> None:
        super().__init__()
        if len(blocks) != len(widths) or not widths:
            raise ValueError(f"blocks ({list(blocks)}) needs one count per stage of widths "
                             f"({list(widths)})")
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {', '.join(BLOCKS)}, got {block!r}")
        levels = {2 ** (i + 1): i for i in range(len(widths))}
        if stride not in levels:
            raise ValueError(f"stride must be one of {sorted(levels)} for {len(widths)} stages, "
                             f"got {stride}")
        self.stride = stride
        self.first_out = levels[stride]
        stages, c = [], in_channels
        for w, n in zip(widths, blocks):
            stages.append(nn.Sequential(conv_bn_relu(c, w, stride=2),
                                        *(BLOCKS[block](w) for _ in range(n))))
            c = w
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList(nn.Conv2d(w, out_channels, 1) for w in widths[self.first_out:])
        self.out_channels = out_channels

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x, maps = frames, []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= self.first_out:
                maps.append(x)
        out = self.lateral[-1](maps[-1])
        for lat, m in zip(reversed(self.lateral[:-1]), reversed(maps[:-1])):
            out = lat(m) + F.interpolate(out, size=m.shape[-2:], mode="bilinear", align_corners=False)
        return out
