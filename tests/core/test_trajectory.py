"""Training states along the solver's own trajectory (``train.trajectory``): the laws of
:func:`selfiter.training.trainer.along_trajectory`, and training with it."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

import selfiter
from selfiter.config import config_from_dict
from selfiter.evaluation import score
from selfiter.parameter_models import IdentityModel
from selfiter.training import train
from selfiter.training.trainer import along_trajectory
from tests.core.toy_plugin import Residual, toy_config


def scaled_step(scale: float, inputs: torch.Tensor):
    """The solver step of :class:`Scaled` on the residual features of ``inputs``."""
    return lambda rows, theta: Scaled(scale)(Residual().features(inputs[rows], theta))


class Scaled(nn.Module):
    """A regressor that steps ``scale`` times the residual: contracts towards the truth for
    ``0 < scale < 2``, overshoots away from it otherwise."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * features


@st.composite
def trajectory_cases(draw):
    """(theta0, theta_gt, scale, max_steps, dtype) with the exact outcome known: a kept
    state is ``gt + (1 - scale)^k (theta0 - gt)`` for its own k in 1..max_steps."""
    b, d = draw(st.integers(1, 40)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    g = torch.Generator().manual_seed(seed)
    gt = torch.randn(b, d, generator=g, dtype=dtype)
    theta0 = gt + torch.randn(b, d, generator=g, dtype=dtype) * 3
    scale = draw(st.sampled_from([-0.5, 0.3, 1.0, 1.6, 2.5]))
    return theta0, gt, scale, draw(st.integers(1, 4)), dtype


@settings(max_examples=40, deadline=None)
@given(trajectory_cases())
def test_moved_states_follow_the_solver_and_never_leave_the_sampled_distance(case):
    theta0, gt, scale, max_steps, dtype = case
    model = IdentityModel(names=[f"x{i}" for i in range(gt.shape[1])])
    # distances are measured in units of each dimension's s.d.: give the dimensions unequal ones
    model.fit_data(torch.cat([theta0, gt]) * torch.arange(1, gt.shape[1] + 1, dtype=dtype))
    out = along_trajectory(scaled_step(scale, gt), model, theta0, gt,
                           torch.Generator().manual_seed(0), 1.0, max_steps)
    assert out.dtype == dtype and out.shape == theta0.shape
    std = model.s_std()
    dist0, dist = ((theta0 - gt) / std).norm(dim=1), ((out - gt) / std).norm(dim=1)
    assert (dist <= dist0 * (1 + 1e-6)).all()
    if not 0 <= scale <= 2:  # every step overshoots: nothing is kept
        assert_close(out, theta0, rtol=0, atol=0)
        return
    # each state took k in 1..max_steps steps of the contraction
    ratio = (out - gt) / (theta0 - gt)  # (B, D), (1 - scale)^k in every column
    powers = torch.tensor([(1 - scale) ** k for k in range(1, max_steps + 1)], dtype=dtype)
    nearest = (ratio[:, :1] - powers).abs().min(1).values
    assert (nearest < 1e-4).all()
    assert_close(ratio, ratio[:, :1].expand_as(ratio), atol=1e-4, rtol=1e-4)


def test_share_zero_moves_nothing_and_share_picks_about_that_many():
    g = torch.Generator().manual_seed(1)
    gt = torch.randn(2000, 2, generator=g)
    theta0 = gt + 1.0
    model = IdentityModel(names=["x", "y"])
    same = along_trajectory(scaled_step(0.5, gt), model, theta0, gt, g, 0.0, 3)
    assert_close(same, theta0, rtol=0, atol=0)
    moved = along_trajectory(scaled_step(0.5, gt), model, theta0, gt, g, 0.3, 3)
    share = (moved != theta0).any(1).float().mean()
    assert 0.25 < float(share) < 0.35


def test_training_with_trajectory_states_learns_the_toy_problem(tmp_path):
    cfg = config_from_dict(toy_config(trajectory=0.5, trajectory_steps=2))
    model = selfiter.load(train(cfg, tmp_path / "run", progress=False))
    data = model.problem.load("test")
    ev = score(model.problem, data, model.solve(data.inputs, iterations=6), "test")
    errs = [m["err"] for m in ev.per_iteration]
    assert errs[3] < 0.05 * errs[0]
    # past the third iteration the error holds: no drift from repeating the step
    assert max(errs[3:]) <= errs[3] + 0.01
