"""The damped sinusoid ``y(t) = a * exp(-l t) * sin(w t + p)`` and its parameter box.

Units: ``t`` in seconds, ``a`` in the units of ``y`` (dimensionless here),
``l`` in 1/s, ``w`` in rad/s, ``p`` in rad. Distinct parameters give the same
curve: ``p`` and ``p + 2 pi``, ``(a, p)`` and ``(-a, p + pi)``, ``(w, p)``
and ``(-w, pi - p)``. Errors are therefore measured after mapping a solution
to its :func:`canonical` form (``a >= 0``, ``w >= 0``, ``p`` in ``[-pi, pi)``),
the form of every ground truth.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

#: parameter names, in the order of theta's last dimension
NAMES: tuple[str, ...] = ("a", "l", "w", "p")
#: unit of each parameter
UNITS: tuple[str, ...] = ("1", "1/s", "rad/s", "rad")
#: the part of the box ground truths are drawn from that is fixed: ``(lower, upper)``
#: of ``a``, ``l`` and ``p``. a > 0 and p in [-pi, pi) pick one of the curve's
#: equivalent parameter sets (with w > 0), l >= 0 rules out growing curves. The
#: frequency range is the problem's (:class:`curve_fit.problem.CurveFit`
#: ``w_min``/``w_max``); see :func:`box`.
A_RANGE: tuple[float, float] = (0.5, 2.0)
L_RANGE: tuple[float, float] = (0.0, 1.0)
P_RANGE: tuple[float, float] = (-math.pi, math.pi)
#: index of the periodic parameter (the phase)
PHASE = 3


def box(w_min: float, w_max: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The box ``(low: (4,), high: (4,))`` of ground truths with frequencies in
    ``[w_min, w_max)`` rad/s; ``a``, ``l`` and ``p`` span their fixed ranges."""
    low, high = zip(A_RANGE, L_RANGE, (w_min, w_max), P_RANGE)
    return torch.tensor(low), torch.tensor(high)


def time_grid(t_points: int, t_max: float) -> torch.Tensor:
    """The sampling instants ``(T,)`` in s: ``t_points`` evenly spaced in ``[0, t_max]``."""
    if t_points < 2:
        raise ValueError(f"t_points must be >= 2, got {t_points}")
    if not t_max > 0:
        raise ValueError(f"t_max must be > 0, got {t_max}")
    return torch.linspace(0.0, t_max, t_points)


def damped_sine(theta: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The curve of each parameter vector on the grid.

    ``theta: (..., 4)`` as ``(a, l, w, p)``, ``t: (T,)`` in s ``-> y: (..., T)``,
    in theta's dtype and on its device."""
    t = t.to(theta)
    a, l, w, p = (theta[..., i, None] for i in range(4))  # each (..., 1)
    return a * torch.exp(-l * t) * torch.sin(w * t + p)


def residual_fn(t: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The one-sample residual on grid ``t: (T,)`` for :class:`selfiter.solver.GaussNewtonSolver`:
    ``(y: (T,), theta: (4,)) -> f(theta) - y: (T,)``, zero at a noise-free truth."""

    def residual(y: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return damped_sine(theta, t) - y

    return residual


def wrap_phase(p: torch.Tensor) -> torch.Tensor:
    """Angles ``p`` (any shape, rad) mapped to ``[-pi, pi)``."""
    return torch.remainder(p + math.pi, 2 * math.pi) - math.pi


def canonical(theta: torch.Tensor) -> torch.Tensor:
    """The parameters ``(..., 4)`` of the same curve with ``a >= 0``, ``w >= 0`` and
    ``p`` in ``[-pi, pi)``, using ``sin(x) = sin(pi - x) = -sin(x + pi)``."""
    a, l, w, p = theta.unbind(-1)
    p = torch.where(w < 0, math.pi - p, p)
    p = torch.where(a < 0, p + math.pi, p)
    return torch.stack([a.abs(), l, w.abs(), wrap_phase(p)], dim=-1)


def theta_error(theta: torch.Tensor, theta_gt: torch.Tensor) -> torch.Tensor:
    """Signed per-parameter error ``(..., 4)`` of ``theta`` against ``theta_gt`` in
    each parameter's unit, both taken in :func:`canonical` form, the phase
    error wrapped to ``[-pi, pi)``."""
    err = canonical(theta) - canonical(theta_gt)
    return torch.cat([err[..., :PHASE], wrap_phase(err[..., PHASE:])], dim=-1)


def normalised_error(theta: torch.Tensor, theta_gt: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Per-sample parameter error ``(..., 4) -> (...)``: the RMS over the four
    parameters of ``|theta_error|`` divided by ``width: (4,)``, the width of each
    parameter's box (``high - low`` of :func:`box`), so 0.01 means "1% of the
    range, on average". Dimensionless."""
    return (theta_error(theta, theta_gt) / width.to(theta)).pow(2).mean(-1).sqrt()
