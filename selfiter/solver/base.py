"""One solver loop, ``theta_{k+1} = theta_k + compute_delta(context, theta_k, k)``.

Subclasses override :meth:`IterativeSolver.compute_delta`; one whose step reads
a per-input encoding also overrides :meth:`IterativeSolver.prepare` (run once
per solve, before the first iteration) and, for a context that is not a
tensor or tuple of tensors, :meth:`IterativeSolver.select`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from selfiter.interfaces import Context, FeatureExtractor


@dataclass
class SolveResult:
    """What a batched solve returns."""

    #: final locations, ``(B, D)``; a non-finite sample keeps its last (non-finite) value
    theta: torch.Tensor
    #: every iterate, ``(K+1, B, D)``, ``trajectory[0]`` the start; a sample that
    #: stopped early repeats its final value
    trajectory: torch.Tensor
    #: iterations applied to each sample, ``(B,)`` long
    steps: torch.Tensor
    #: samples stopped by the tolerance, ``(B,)`` bool
    converged: torch.Tensor
    #: samples whose theta became NaN or inf, ``(B,)`` bool: their result is not to be trusted
    nonfinite: torch.Tensor


class IterativeSolver(ABC):
    """Algorithm 2, batched, with a per-sample stop on the step size."""

    def prepare(self, inputs: torch.Tensor) -> Context:
        """What every iteration reads, computed once per solve from ``inputs: (B, ...)``
        (the data set once, as an objective is). Default: the inputs themselves."""
        return inputs

    def select(self, context: Context, index: torch.Tensor) -> Context:
        """The rows ``index: (A,)`` of a context (to go on with the active samples only)."""
        return FeatureExtractor.select(context, index)

    @abstractmethod
    def compute_delta(self, context: Context, theta: torch.Tensor, k: int) -> torch.Tensor:
        """The increment at iteration ``k`` (0-based): ``context`` of B inputs (see
        :meth:`prepare`), ``theta: (B, D) -> delta: (B, D)``."""

    @torch.no_grad()
    def solve(
        self, inputs: torch.Tensor, theta0: torch.Tensor, iterations: int, tol: float = 0.0
    ) -> SolveResult:
        """Run up to ``iterations`` steps from ``theta0: (B, D)``.

        A sample stops once the RMS of its step is ``<= tol`` (``tol=0`` runs
        every iteration) or once its theta is no longer finite."""
        if iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        b = theta0.shape[0]
        theta = theta0.clone()  # (B, D)
        traj = [theta.clone()]
        active = torch.isfinite(theta).all(1)  # (B,)
        nonfinite = ~active
        converged = torch.zeros(b, dtype=torch.bool, device=theta.device)
        steps = torch.zeros(b, dtype=torch.long, device=theta.device)
        context = self.prepare(inputs)
        for k in range(iterations):
            if not bool(active.any()):
                traj.append(theta.clone())
                continue
            all_active = bool(active.all())
            idx = None if all_active else active.nonzero(as_tuple=True)[0]
            sub_context = context if idx is None else self.select(context, idx)
            sub_theta = theta if idx is None else theta[idx]
            delta = self.compute_delta(sub_context, sub_theta, k).to(theta.dtype)  # (A, D)
            new = sub_theta + delta
            bad = ~torch.isfinite(new).all(1)
            small = delta.pow(2).mean(1).sqrt() <= tol if tol > 0 else torch.zeros_like(bad)
            if idx is None:
                theta = new
                steps += 1
                nonfinite |= bad
                converged |= small & ~bad
            else:
                theta[idx] = new
                steps[idx] += 1
                nonfinite[idx] |= bad
                converged[idx] |= small & ~bad
            active = active & ~nonfinite & ~converged
            traj.append(theta.clone())
        return SolveResult(theta, torch.stack(traj), steps, converged, nonfinite)
