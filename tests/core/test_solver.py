"""Laws of the solver loop (Algorithm 2), stated as hypothesis properties."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from selfiter.solver import GaussNewtonSolver, IterativeSolver


class ExactStep(IterativeSolver):
    """A regressor that knows the exact increment theta* - theta."""

    def __init__(self, target: torch.Tensor) -> None:
        self.target = target  # (B, D), indexed like the inputs

    def compute_delta(self, inputs, theta, k):
        return inputs - theta  # inputs carry theta*


class Contraction(IterativeSolver):
    """R = c (theta* - theta), 0 < c < 1."""

    def __init__(self, c: float) -> None:
        self.c = c

    def compute_delta(self, inputs, theta, k):
        return self.c * (inputs - theta)


class Constant(IterativeSolver):
    def __init__(self, value: float) -> None:
        self.value = value

    def compute_delta(self, inputs, theta, k):
        return torch.full_like(theta, self.value)


def problems(dtype=torch.float64):
    """(theta_star, theta0) pairs: batch size 1..16, dimension 1..8."""
    return st.tuples(st.integers(1, 16), st.integers(1, 8), st.integers(0, 2**31 - 1)).map(
        lambda a: _draw(*a, dtype)
    )


def _draw(b, d, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    star = torch.randn(b, d, generator=g, dtype=dtype) * 5
    start = star + torch.randn(b, d, generator=g, dtype=dtype) * 10
    return star, start


@given(problems(), st.integers(1, 6))
def test_exact_increment_lands_in_one_step_and_stays(pair, iterations):
    star, start = pair
    res = ExactStep(star).solve(star, start, iterations)
    for k in range(1, iterations + 1):
        torch.testing.assert_close(res.trajectory[k], star)
    torch.testing.assert_close(res.theta, star)
    assert res.trajectory.shape == (iterations + 1, *star.shape)


@given(problems(), st.floats(0.05, 0.95), st.integers(0, 8))
def test_contraction_error_bound(pair, c, k):
    star, start = pair
    res = Contraction(c).solve(star, start, k)
    e0 = (start - star).norm(dim=1)
    ek = (res.theta - star).norm(dim=1)
    # error after k steps is (1-c)^k of the start's; the bound for R = c'(theta*-theta)
    # written with contraction factor q = 1 - c
    q = 1.0 - c
    assert torch.all(ek <= (q ** k) * e0 * (1 + 1e-9) + 1e-9)


@given(st.integers(1, 64), st.sampled_from([torch.float32, torch.float64]))
def test_any_batch_size_and_dtype(b, dtype):
    star, start = _draw(b, 3, b, dtype)
    res = Contraction(0.5).solve(star, start, 3)
    assert res.theta.dtype == dtype and res.theta.shape == (b, 3)
    assert res.steps.tolist() == [3] * b
    assert not res.nonfinite.any()


def test_nan_is_flagged_and_stops_the_sample():
    star = torch.zeros(4, 2)
    start = torch.ones(4, 2)
    start[2, 0] = float("nan")
    res = Contraction(0.5).solve(star, start, 3)
    assert res.nonfinite.tolist() == [False, False, True, False]
    assert res.steps[2] == 0 and res.steps[0] == 3


def test_divergence_to_inf_is_flagged():
    res = Constant(1e38).solve(torch.zeros(2, 1), torch.full((2, 1), 3e38), 2)
    assert res.nonfinite.all()
    assert res.steps.tolist() == [1, 1]


def test_tolerance_stops_each_sample_on_its_own():
    star = torch.zeros(3, 1, dtype=torch.float64)
    start = torch.tensor([[1.0], [100.0], [1e4]], dtype=torch.float64)
    res = Contraction(0.5).solve(star, start, 40, tol=1e-3)
    assert res.converged.all()
    # the step halves each time: the start of size s needs about log2(s / tol) steps
    expected = [math.ceil(math.log2(abs(s) / 2 / 1e-3)) + 1 for s in (1.0, 100.0, 1e4)]
    assert res.steps.tolist() == expected
    assert res.steps[0] < res.steps[1] < res.steps[2]


def test_zero_iterations_returns_the_start():
    start = torch.randn(5, 2)
    res = Contraction(0.5).solve(torch.zeros(5, 2), start, 0)
    torch.testing.assert_close(res.theta, start)
    assert res.trajectory.shape == (1, 5, 2)


@settings(deadline=None, max_examples=20)
@given(st.integers(1, 8), st.integers(0, 10_000))
def test_gauss_newton_converges_on_a_well_posed_problem(b, seed):
    # exponential fit y = a exp(-l t): Gauss-Newton from a near start converges quadratically
    t = torch.linspace(0, 2, 20, dtype=torch.float64)

    def residual(y, theta):
        return theta[0] * torch.exp(-theta[1] * t) - y

    g = torch.Generator().manual_seed(seed)
    star = torch.stack([1 + torch.rand(b, generator=g, dtype=torch.float64),
                        0.5 + torch.rand(b, generator=g, dtype=torch.float64)], 1)
    y = star[:, :1] * torch.exp(-star[:, 1:] * t)
    start = star + 0.1 * torch.randn(b, 2, generator=g, dtype=torch.float64)
    res = GaussNewtonSolver(residual, damping=1e-6).solve(y, start, 10)
    torch.testing.assert_close(res.theta, star, atol=1e-8, rtol=1e-8)
    # forward-mode Jacobians: the same iterates
    fwd = GaussNewtonSolver(residual, damping=1e-6, jacobian="forward").solve(y, start, 10)
    torch.testing.assert_close(fwd.trajectory, res.trajectory, atol=1e-10, rtol=1e-10)


def test_gauss_newton_refuses_an_unknown_jacobian_mode():
    with pytest.raises(ValueError, match="jacobian must be 'reverse' or 'forward', got 'central'"):
        GaussNewtonSolver(lambda x, t: x - t, jacobian="central")
