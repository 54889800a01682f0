"""A classical comparison: damped Gauss-Newton (Levenberg) on an explicit residual."""

from __future__ import annotations

from typing import Callable

import torch
from torch.func import jacrev, vmap

from selfiter.solver.base import IterativeSolver

#: ``residual(inputs_one: (...), theta_one: (D,)) -> r: (M,)`` for ONE sample
Residual = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class GaussNewtonSolver(IterativeSolver):
    """``delta = -(J^T J + damping * diag(J^T J))^-1 J^T r``, Jacobians by ``torch.func``.

    ``residual`` is written for one sample; it is vmapped over the batch, so
    the whole batch takes one step at a time with no Python loop."""

    def __init__(self, residual: Residual, damping: float = 1e-3) -> None:
        self.residual = residual
        self.damping = damping
        self._r = vmap(residual)
        self._j = vmap(jacrev(residual, argnums=1))

    def compute_delta(self, inputs: torch.Tensor, theta: torch.Tensor, k: int) -> torch.Tensor:
        r = self._r(inputs, theta)  # (B, M)
        j = self._j(inputs, theta)  # (B, M, D)
        jtj = j.transpose(1, 2) @ j  # (B, D, D)
        diag = torch.diagonal(jtj, dim1=1, dim2=2)  # (B, D)
        a = jtj + torch.diag_embed(self.damping * diag + 1e-12)
        g = (j.transpose(1, 2) @ r.unsqueeze(-1)).squeeze(-1)  # (B, D)
        return -torch.linalg.solve(a, g)
