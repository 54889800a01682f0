"""A classical comparison: damped Gauss-Newton (Levenberg) on an explicit residual."""

from __future__ import annotations

from typing import Callable, Literal

import torch
from torch.func import jacfwd, jacrev, vmap

from selfiter.solver.base import IterativeSolver

#: ``residual(inputs_one: (...), theta_one: (D,)) -> r: (M,)`` for ONE sample
Residual = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class GaussNewtonSolver(IterativeSolver):
    """``delta = -(J^T J + damping * diag(J^T J))^-1 J^T r``, Jacobians by ``torch.func``.

    ``residual`` is written for one sample; it is vmapped over the batch, so
    the whole batch takes one step at a time with no Python loop. ``jacobian``:
    ``reverse`` (``jacrev``, one pass per residual) or ``forward`` (``jacfwd``,
    one pass per parameter: far less work for many residuals and few
    parameters, e.g. image alignment's thousand pixels and 8 corners; the
    residual's operations need forward-mode derivatives). A singular system
    (say, a state whose residuals are all zero) gives that sample a non-finite
    step, which stops it, instead of an error for the batch."""

    def __init__(self, residual: Residual, damping: float = 1e-3,
                 jacobian: Literal["reverse", "forward"] = "reverse") -> None:
        if jacobian not in ("reverse", "forward"):
            raise ValueError(f"jacobian must be 'reverse' or 'forward', got {jacobian!r}")
        self.residual = residual
        self.damping = damping
        self._r = vmap(residual)
        self._j = vmap((jacrev if jacobian == "reverse" else jacfwd)(residual, argnums=1))

    def compute_delta(self, inputs: torch.Tensor, theta: torch.Tensor, k: int) -> torch.Tensor:
        r = self._r(inputs, theta)  # (B, M)
        j = self._j(inputs, theta)  # (B, M, D)
        jtj = j.transpose(1, 2) @ j  # (B, D, D)
        diag = torch.diagonal(jtj, dim1=1, dim2=2)  # (B, D)
        a = jtj + torch.diag_embed(self.damping * diag + 1e-12)
        g = (j.transpose(1, 2) @ r.unsqueeze(-1)).squeeze(-1)  # (B, D)
        return -torch.linalg.solve_ex(a, g.unsqueeze(-1))[0].squeeze(-1)
