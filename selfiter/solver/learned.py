"""Learned steps: one self-iterative regressor (SIR) or a cascade of regressors (CR).

:class:`LearnedModel` is every learned weight of a solver in one module (the
feature extractor, when it has weights, and the regressor or the cascade's
stages), with the one step that the solver loop, training (cascade stages,
trajectory states, the loss) and the exported graph all call:
``delta = R_k(features(encode(inputs), theta))``.
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

import torch
from torch import nn

from selfiter.interfaces import Auxiliary, Context, FeatureExtractor, Regressor
from selfiter.solver.base import IterativeSolver

Mode = Literal["sir", "cascade"]

#: ``prepare(context, theta) -> theta``: moves training states before the loss is taken
#: (cascade stages, trajectory steps); runs without gradients
Prepare = Callable[[Context, torch.Tensor], torch.Tensor]


class LearnedModel(nn.Module):
    """The learned parts of a solver: ``extractor`` (a submodule when it has weights,
    state-dict keys ``extractor.*``) and ``regressors`` (one for ``sir``, one per
    stage for ``cascade``; keys ``regressors.{i}.*``)."""

    def __init__(self, extractor: FeatureExtractor, regressors: Sequence[Regressor],
                 mode: Mode = "sir") -> None:
        super().__init__()
        if not regressors:
            raise ValueError("a learned solver needs at least one regressor")
        if mode == "sir" and len(regressors) != 1:
            raise ValueError(f"SIR has one regressor, got {len(regressors)}")
        self.extractor = extractor
        self.regressors = nn.ModuleList(regressors)
        self.mode = mode

    @property
    def learned_extractor(self) -> bool:
        """Whether the extractor has weights of its own (trained with the regressor)."""
        return isinstance(self.extractor, nn.Module) and any(
            True for _ in self.extractor.parameters())

    def encode(self, inputs: torch.Tensor) -> Context:
        """The per-input context, ``inputs: (B, ...)`` -> context of B (once per solve)."""
        return self.extractor.encode(inputs)

    def step(self, context: Context, theta: torch.Tensor, k: int) -> torch.Tensor:
        """The increment at iteration ``k``: ``theta: (B, D) -> delta: (B, D)`` float32."""
        return self.regressor(k)(self.extractor.features(context, theta)).float()

    def regressor(self, k: int) -> Regressor:
        """The regressor of iteration ``k`` (SIR: always the one)."""
        if self.mode == "sir":
            return self.regressors[0]
        if k < len(self.regressors):
            return self.regressors[k]
        raise ValueError(f"iteration {k + 1} asked of a cascade of {len(self.regressors)} "
                         "stages; a cascade runs at most one iteration per stage")

    def forward(self, inputs: torch.Tensor, theta: torch.Tensor, k: int = 0,
                prepare: Prepare | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, Auxiliary | None]:
        """The training forward: ``inputs: (B, ...)`` and ``theta: (B*M, D)``, M states
        per input, grouped by input (rows ``b*M .. b*M+M-1`` belong to input ``b``).

        Each input is encoded once and its context shared by its M states, so the
        gradients of all M reach one encoding. ``prepare`` (no gradients) may move
        the states first. Returns ``(delta: (B*M, D), theta: (B*M, D), auxiliary)``,
        the predicted increments, the states they were predicted at and the
        regressor's :data:`~selfiter.interfaces.Auxiliary` (or None), from
        :meth:`~selfiter.interfaces.Regressor.forward_train`."""
        b = inputs.shape[0]
        if theta.shape[0] % b:
            raise ValueError(f"theta has {theta.shape[0]} rows, not a multiple of the {b} inputs")
        m = theta.shape[0] // b
        context = self.encode(inputs)
        if m > 1:
            rows = torch.arange(b, device=theta.device).repeat_interleave(m)  # (B*M,)
            context = self.extractor.repeat(context, rows)
        if prepare is not None:
            with torch.no_grad():
                theta = prepare(self.extractor.detach(context), theta)
        delta, auxiliary = self.regressor(k).forward_train(
            self.extractor.features(context, theta))
        return delta.float(), theta, auxiliary


class LearnedSolver(IterativeSolver):
    """The solver loop over a :class:`LearnedModel`: encode once, then ``model.step``."""

    def __init__(self, model: LearnedModel) -> None:
        self.model = model

    def prepare(self, inputs: torch.Tensor) -> Context:
        return self.model.encode(inputs)

    def select(self, context: Context, index: torch.Tensor) -> Context:
        return self.model.extractor.select(context, index)

    def compute_delta(self, context: Context, theta: torch.Tensor, k: int) -> torch.Tensor:
        return self.model.step(context, theta, k)


class SIRSolver(LearnedSolver):
    """``delta = R(features(inputs, theta))`` with the same ``R`` at every iteration."""

    def __init__(self, extractor: FeatureExtractor, regressor: Regressor) -> None:
        super().__init__(LearnedModel(extractor, [regressor], "sir"))


class CascadeSolver(LearnedSolver):
    """``delta = R_k(features(inputs, theta))``: stage ``k`` has its own regressor (Eq. 2)."""

    def __init__(self, extractor: FeatureExtractor, regressors: Sequence[Regressor]) -> None:
        if not regressors:
            raise ValueError("a cascade needs at least one regressor")
        super().__init__(LearnedModel(extractor, regressors, "cascade"))


def make_solver(model: LearnedModel) -> LearnedSolver:
    """The solver loop over ``model`` (SIR or cascade, as its ``mode`` says)."""
    return LearnedSolver(model)
