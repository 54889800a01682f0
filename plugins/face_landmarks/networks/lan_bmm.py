"""LAN's per-landmark conv trunk as batched matrix products over landmarks.

The reference trunk (:func:`face_landmarks.networks.lan.conv_trunk`) runs the L
sub-networks as one grouped convolution per layer. Grouped convolutions with
many small groups (68 groups of 3 -> 16 channels) fall to slow kernels on GPUs.
Here the same weights are applied as one ``bmm`` per layer with the landmarks as
the batch: activations stay landmark-major and channels-last, ``(L, B, H, W, C)``,
so every layer is ``(L, B*H*W, k*k*C_in) @ (L, k*k*C_in, C_out)`` on an
im2col made of ``k*k`` shifted views, and no permute happens between layers.
It computes what the reference computes, to rounding (tests compare both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_relu_bmm(x: torch.Tensor, conv: nn.Conv2d, n_pts: int) -> torch.Tensor:
    """``x: (L, B, H, W, C_in) -> relu(conv(x)): (L, B, H, W, C_out)``, size-preserving.

    ``conv`` is the reference's grouped layer: weight ``(L*C_out, C_in, k, k)``.
    A 3x3 kernel pads one pixel all round; a 2x2 kernel pads one row and column
    at the bottom and right, as the reference's ``ZeroPad2d((0, 1, 0, 1))``.
    """
    n, b, h, w, c_in = x.shape
    k = conv.kernel_size[0]
    c_out = conv.out_channels // n_pts
    before = (k - 1) // 2
    after = k - 1 - before
    xp = F.pad(x, (0, 0, before, after, before, after))  # (L, B, H+k-1, W+k-1, C_in)
    # im2col over the k*k taps, ordered (row, column, channel) like the weight below
    cols = torch.cat([xp[:, :, i:i + h, j:j + w] for i in range(k) for j in range(k)], dim=-1)
    weight = conv.weight.view(n, c_out, c_in, k, k).permute(0, 3, 4, 2, 1)  # (L, k, k, C_in, C_out)
    out = torch.baddbmm(conv.bias.view(n, 1, c_out), cols.view(n, b * h * w, k * k * c_in),
                        weight.reshape(n, k * k * c_in, c_out))  # (L, B*H*W, C_out)
    return out.view(n, b, h, w, c_out).relu_()


def _pool2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pool with ceil mode of ``x: (L, B, H, W, C)``, all ``x >= 0``.

    Odd sides are padded with zeros, which cannot win a max over values that
    have passed a ReLU: the same as ceil mode's ignored border."""
    h, w = x.shape[2], x.shape[3]
    x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
    n, b, h2, w2, c = x.shape
    return x.view(n, b, h2 // 2, 2, w2 // 2, 2, c).amax(dim=(3, 5))


def trunk_bmm(trunk: nn.Sequential, features: torch.Tensor) -> torch.Tensor:
    """The reference ``trunk``'s output, flattened per landmark in its (C, H, W) order.

    ``features: (B, L, C, P, P) -> (B, L, C3 * s * s)`` where ``trunk`` is
    :func:`~face_landmarks.networks.lan.conv_trunk` with ``groups = L``.
    """
    n_pts = features.shape[1]
    x = features.permute(1, 0, 3, 4, 2).contiguous()  # (L, B, P, P, C)
    for conv in (m for m in trunk if isinstance(m, nn.Conv2d)):
        x = _pool2(_conv_relu_bmm(x, conv, n_pts))
    return x.permute(1, 0, 4, 2, 3).flatten(2)  # (B, L, C3*s*s)
