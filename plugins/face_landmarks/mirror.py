"""The left-right mirror of a face and its 68 points: training's flips and the test view
that ``solver.tta`` averages over.

Points ``theta: (B, 2L)`` are frame px ``x_1, y_1, ...`` with pixel column ``c``
centred at ``x = c``, so mirroring a frame ``W`` px wide maps ``x`` to ``W - 1 - x``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from selfiter.interfaces import View


def _mirror_68() -> tuple[int, ...]:
    pairs = [(i, 16 - i) for i in range(8)]  # jaw, 8 is the chin
    pairs += [(17 + i, 26 - i) for i in range(5)]  # eyebrows
    pairs += [(31, 35), (32, 34)]  # nostrils; the bridge 27-30 and the middle 33 stay
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lip
    pairs += [(60, 64), (61, 63), (65, 67)]  # inner lip
    perm = list(range(68))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


#: the 68-point (Multi-PIE) horizontal mirror, 0-based: after a left-right flip,
#: point ``i`` of the flipped face is point ``MIRROR_68[i]`` of the original
MIRROR_68: tuple[int, ...] = _mirror_68()


def mirror_points(theta: torch.Tensor, width: int,
                  mirror: Sequence[int] = MIRROR_68) -> torch.Tensor:
    """The points of the mirrored frame: ``theta: (B, 2L) -> (B, 2L)``, ``x -> width - 1 -
    x`` and renumbered by ``mirror`` so that every index keeps its meaning (point 37,
    1-based, is still the outer corner of the eye on the image's left). An involution."""
    pts = theta.reshape(theta.shape[0], -1, 2)
    if pts.shape[1] != len(mirror):
        raise ValueError(
            f"theta has {pts.shape[1]} points but the mirror permutation {len(mirror)}")
    out = pts[:, list(mirror)] * pts.new_tensor([-1.0, 1.0]) + pts.new_tensor([width - 1.0, 0.0])
    return out.reshape_as(theta)


class MirrorView(View):
    """The face frame mirrored left to right (``inputs: (B, C, H, W)``), with its points
    mirrored and renumbered (:func:`mirror_points`); its own inverse."""

    name = "mirror"

    def __init__(self, width: int) -> None:
        self.width = width

    def inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.flip(-1)

    def theta(self, theta: torch.Tensor) -> torch.Tensor:
        return mirror_points(theta, self.width)

    def theta_back(self, theta: torch.Tensor) -> torch.Tensor:
        return mirror_points(theta, self.width)
