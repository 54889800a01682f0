"""Learned steps: one self-iterative regressor (SIR) or a cascade of regressors (CR)."""

from __future__ import annotations

from typing import Sequence

import torch

from selfiter.interfaces import FeatureExtractor, Regressor
from selfiter.solver.base import IterativeSolver


class SIRSolver(IterativeSolver):
    """``delta = R(features(inputs, theta))`` with the same ``R`` at every iteration."""

    def __init__(self, extractor: FeatureExtractor, regressor: Regressor) -> None:
        self.extractor = extractor
        self.regressor = regressor

    def compute_delta(self, inputs: torch.Tensor, theta: torch.Tensor, k: int) -> torch.Tensor:
        return self.regressor(self.extractor.features(inputs, theta)).float()


class CascadeSolver(IterativeSolver):
    """``delta = R_k(features(inputs, theta))``: stage ``k`` has its own regressor (Eq. 2)."""

    def __init__(self, extractor: FeatureExtractor, regressors: Sequence[Regressor]) -> None:
        if not regressors:
            raise ValueError("a cascade needs at least one regressor")
        self.extractor = extractor
        self.regressors = list(regressors)

    def compute_delta(self, inputs: torch.Tensor, theta: torch.Tensor, k: int) -> torch.Tensor:
        if k >= len(self.regressors):
            raise ValueError(
                f"iteration {k + 1} asked of a cascade of {len(self.regressors)} stages; "
                "a cascade runs at most one iteration per stage"
            )
        return self.regressors[k](self.extractor.features(inputs, theta)).float()
