"""Scores of an alignment: the mean corner error (px) and the success rates."""

from __future__ import annotations

import torch

#: success thresholds on the mean corner error, px
SUCCESS_PX = (1.0, 3.0)


def corner_error(theta: torch.Tensor, theta_gt: torch.Tensor) -> torch.Tensor:
    """The mean over the 4 corners of the distance between the predicted and the true
    corner position: ``(..., 8), (..., 8) -> (...)`` px. Non-finite predictions give +inf."""
    d = (theta - theta_gt).reshape(*theta.shape[:-1], 4, 2)
    err = d.pow(2).sum(-1).sqrt().mean(-1)
    return torch.where(torch.isfinite(err), err, torch.full_like(err, float("inf")))


def alignment_metrics(theta: torch.Tensor, theta_gt: torch.Tensor) -> dict[str, float]:
    """``corner_err`` (mean corner error over the samples, px: the headline, lower is
    better; +inf if any prediction is not finite), ``median_corner_err`` (px), and
    ``success_1px`` / ``success_3px`` (% of samples with a corner error below 1 / 3 px)."""
    err = corner_error(theta.double(), theta_gt.to(theta.device).double())  # (N,)
    out = {"corner_err": float(err.mean()), "median_corner_err": float(err.median())}
    for px in SUCCESS_PX:
        out[f"success_{px:g}px"] = float((err < px).double().mean() * 100.0)
    return out
