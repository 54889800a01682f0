"""Regression losses on ``(prediction - target) / scale``, averaged over batch and dimensions."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _wing(pred: torch.Tensor, target: torch.Tensor, w: float = 10.0, eps: float = 2.0) -> torch.Tensor:
    # Wing loss (Feng et al. 2018): log-shaped near 0 so small errors keep a strong gradient.
    x = (pred - target).abs()
    c = w - w * math.log1p(w / eps)
    return torch.where(x < w, w * torch.log1p(x / eps), x - c).mean()


def make_loss(name: str, scale: float) -> Loss:
    """``pred, target: (B, D) -> scalar``; ``l2`` is Eq. 6 up to a constant factor."""
    base: dict[str, Loss] = {
        "l2": F.mse_loss,
        "l1": F.l1_loss,
        "smooth_l1": F.smooth_l1_loss,
        "wing": _wing,
    }
    fn = base[name]
    return lambda pred, target: fn(pred / scale, target / scale)
