"""Test-time averaging over a problem's views (``solver.tta``)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

import selfiter
from selfiter.config import config_from_dict
from selfiter.errors import ConfigError
from selfiter.interfaces import View
from selfiter.solver import IterativeSolver
from selfiter.solver.views import solve_averaged
from selfiter.training import train
from tests.core.toy_plugin import toy_config


class Affine(View):
    """``theta -> A theta + b`` (and the inputs alike: the toy's inputs live in theta's space)."""

    name = "affine"

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        self.a, self.b = a, b

    def inputs(self, inputs):
        return inputs @ self.a.T + self.b

    theta = inputs

    def theta_back(self, theta):
        return torch.linalg.solve(self.a, (theta - self.b).T).T


class Step(IterativeSolver):
    """``delta = c (inputs - theta) + bias``: equivariant under every affine view when the
    bias is 0, not otherwise."""

    def __init__(self, c: float, bias: float) -> None:
        self.c, self.bias = c, bias

    def compute_delta(self, inputs, theta, k):
        return self.c * (inputs - theta) + self.bias


@st.composite
def cases(draw):
    """(inputs (N, D), theta0 (N, D), views): float64, 1-3 invertible affine views."""
    n, d, v = draw(st.integers(1, 6)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    views = []
    for _ in range(v):
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        scale = torch.rand(d, generator=g, dtype=torch.float64) + 0.5
        views.append(Affine(q * scale, torch.randn(d, generator=g, dtype=torch.float64)))
    inputs = torch.randn(n, d, generator=g, dtype=torch.float64) * 3
    return inputs, inputs + torch.randn(n, d, generator=g, dtype=torch.float64) * 5, views


@settings(max_examples=60, deadline=None)
@given(cases(), st.floats(0.1, 0.9), st.integers(0, 4), st.sampled_from([0.0, 0.3]))
def test_the_average_is_the_mean_of_each_view_solved_alone_and_mapped_back(case, c, k, bias):
    inputs, theta0, views = case
    solver = Step(c, bias)
    got = solve_averaged(lambda x, t: solver.solve(x, t, k), views, inputs, theta0)
    plain = solver.solve(inputs, theta0, k).trajectory
    alone = [plain]
    for v in views:
        traj = solver.solve(v.inputs(inputs), v.theta(theta0), k).trajectory  # (K+1, N, D)
        alone.append(torch.stack([v.theta_back(t) for t in traj]))
    expected = torch.stack(alone).mean(0)
    assert_close(got.trajectory, expected)
    assert_close(got.theta, expected[-1])
    assert got.steps.tolist() == [k] * inputs.shape[0]
    if bias == 0.0:
        # an equivariant solver averaged over exact symmetries is unchanged: every view
        # starts from the view of the plain start, so each solves the same problem
        assert_close(got.trajectory, plain)


def test_no_views_is_the_plain_solve_and_flags_combine_over_views():
    solver = Step(0.5, bias=0.0)
    inputs = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    theta0 = torch.zeros(2, 2)
    plain = solve_averaged(lambda x, t: solver.solve(x, t, 3), (), inputs, theta0)
    assert_close(plain.theta, solver.solve(inputs, theta0, 3).theta)

    class Poison(Affine):  # the view of sample 1 is not finite
        def inputs(self, inputs):
            out = inputs.clone()
            out[1] = float("nan")
            return out

    eye = torch.eye(2)
    res = solve_averaged(lambda x, t: solver.solve(x, t, 3, tol=1e9), (Poison(eye, torch.zeros(2)),),
                         inputs, theta0)
    assert res.nonfinite.tolist() == [False, True]
    # sample 0 stopped at once in both solves (tol 1e9); sample 1's view never converged
    assert res.converged.tolist() == [True, False]
    assert res.steps.tolist() == [1, 1]


def test_tta_averages_a_trained_solver_and_is_refused_without_views(tmp_path):
    raw = toy_config(steps=50)
    raw["problem"]["name"] = "toy_symmetric"
    model = selfiter.load(train(config_from_dict(raw), tmp_path / "sym", progress=False))
    data = model.problem.load("test")
    plain = model.solve(data.inputs)
    negated = model.solve(-data.inputs, -plain.trajectory[0])
    assert_close(model.solve(data.inputs, tta=True).theta, (plain.theta - negated.theta) / 2)
    model.config.solver.tta = True  # the config's default
    assert_close(model.solve(data.inputs).theta, (plain.theta - negated.theta) / 2)

    flat = selfiter.load(train(config_from_dict(toy_config(steps=5)), tmp_path / "toy",
                               progress=False))
    with pytest.raises(ConfigError, match="solver.tta: problem ToyProblem has no test views"):
        flat.solve(data.inputs, tta=True)


def test_evaluate_tta_says_what_it_averages_and_is_refused_in_one_line_without_views(
        tmp_path, capsys):
    import yaml

    from selfiter.cli.main import main

    for name in ("toy_symmetric", "toy"):
        raw = toy_config(steps=10)
        raw["problem"]["name"] = name
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(raw))
        assert main(["train", str(tmp_path / f"{name}.yaml"), "-o", str(tmp_path / name),
                     "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "toy_symmetric.yaml"), "--checkpoint",
                 str(tmp_path / "toy_symmetric"), "--tta"]) == 0
    out = capsys.readouterr().out
    assert "solver.tta: each row is the mean of the plain solve and its views (negate)" in out
    assert main(["evaluate", str(tmp_path / "toy.yaml"), "--checkpoint", str(tmp_path / "toy"),
                 "--tta"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "solver.tta: problem ToyProblem has no test views" in err[0]
