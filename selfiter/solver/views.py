"""Test-time averaging over a problem's views (``solver.tta``): the inputs as they are
and each :class:`~selfiter.interfaces.View` of them (a mirrored face) are solved in one
batch, each view's iterates are mapped back, and the iterates are averaged."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from selfiter.interfaces import View
from selfiter.solver.base import SolveResult

#: ``solve(inputs: (N, ...), theta0: (N, D)) -> SolveResult``
Solve = Callable[[torch.Tensor, torch.Tensor], SolveResult]


def solve_averaged(solve: Solve, views: Sequence[View], inputs: torch.Tensor,
                   theta0: torch.Tensor) -> SolveResult:
    """``solve`` of ``inputs: (N, ...)`` from ``theta0: (N, D)`` and of every view of them
    from the view of ``theta0``, as one batch of ``(1 + V) N``; returns the mean over the
    ``1 + V`` solves of each iterate, mapped back to the inputs' frame. A sample counts as
    converged when all of its solves converged, non-finite when any of them did, and its
    steps are the most any of them took."""
    if not views:
        return solve(inputs, theta0)
    n = inputs.shape[0]
    all_inputs = torch.cat([inputs, *(v.inputs(inputs) for v in views)])  # ((1+V) N, ...)
    all_theta0 = torch.cat([theta0, *(v.theta(theta0) for v in views)])  # ((1+V) N, D)
    res = solve(all_inputs, all_theta0)
    k1 = res.trajectory.shape[0]
    traj = res.trajectory.reshape(k1, 1 + len(views), n, -1)  # (K+1, 1+V, N, D)
    back = [traj[:, 0]] + [v.theta_back(traj[:, i + 1].reshape(k1 * n, -1)).reshape(k1, n, -1)
                           for i, v in enumerate(views)]
    mean = torch.stack(back, 1).mean(1)  # (K+1, N, D)
    per = lambda t: t.reshape(1 + len(views), n)  # noqa: E731  (1+V, N) per sample and view
    return SolveResult(theta=mean[-1], trajectory=mean, steps=per(res.steps).amax(0),
                       converged=per(res.converged).all(0), nonfinite=per(res.nonfinite).any(0))
