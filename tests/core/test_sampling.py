"""The Gaussian-union sampler draws from its stated distribution (Eq. 4)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from selfiter.parameter_models import IdentityModel
from selfiter.sampling import GaussianUnionSampler


def model_with(mean, std):
    m = IdentityModel(names=[f"d{i}" for i in range(len(mean))])
    m.load_state_dict({"mean": torch.tensor(mean, dtype=torch.float64),
                       "std": torch.tensor(std, dtype=torch.float64)})
    return m


# p_mean 0, or from 1e-12: scipy's exact binomial test overflows at p = 2.2e-308 (the
# smallest normal float), which hypothesis found; no sampler depends on such a share
P_MEAN = st.one_of(st.just(0.0), st.floats(1e-12, 1.0))


@given(st.floats(0.05, 2.0), st.floats(0.05, 2.0), P_MEAN, st.integers(0, 10_000))
def test_draws_follow_the_union_of_two_gaussians(sigma, sigma_mean, p_mean, seed):
    n = 20_000
    mean, std = [0.0, 10.0], [1.0, 3.0]
    model = model_with(mean, std)
    s_gt = torch.tensor([[50.0, -40.0]], dtype=torch.float64).expand(n, 2)
    draws = GaussianUnionSampler(sigma=sigma, sigma_mean=sigma_mean, p_mean=p_mean).sample(
        model, s_gt, torch.Generator().manual_seed(seed))
    # the two centres are > 25 std apart, so each draw's centre is unambiguous
    near_mean = (draws[:, 0] - 0.0).abs() < (draws[:, 0] - 50.0).abs()
    # the count of draws around the mean is Binomial(n, p_mean): an exact test at the false
    # alarm rate of a 4-sigma normal bound (two-sided 6.3e-5); the normal bound itself is
    # wrong for a p_mean so small that n * p_mean is a handful of draws
    count = int(near_mean.sum())
    assert binomtest(count, n, p_mean).pvalue > 6.3e-5
    for centre, sig, sel in ((torch.tensor(mean), sigma_mean, near_mean), (s_gt[0], sigma, ~near_mean)):
        if sel.sum() < 500:
            continue
        x = (draws[sel] - centre) / (sig * torch.tensor(std, dtype=torch.float64))
        k = sel.sum().item()
        assert x.mean(0).abs().max() < 5 / k ** 0.5
        assert (x.std(0) - 1).abs().max() < 0.1


@given(st.floats(0.5, 2.0), st.floats(0.001, 0.05), st.floats(0.05, 0.95), st.floats(0.0, 0.5),
       st.integers(0, 10_000))
def test_a_share_of_the_draws_around_the_truth_is_narrow(sigma, sigma_near, p_near, p_mean, seed):
    n = 20_000
    std = torch.tensor([2.0, 0.5], dtype=torch.float64)
    model = model_with([0.0, 0.0], std.tolist())
    s_gt = torch.tensor([[100.0, -80.0]], dtype=torch.float64).expand(n, 2)
    draws = GaussianUnionSampler(sigma=sigma, p_mean=p_mean, sigma_near=sigma_near,
                                 p_near=p_near).sample(model, s_gt, torch.Generator().manual_seed(seed))
    z = (draws - s_gt) / std  # in units of s_std; the mean's draws are > 40 of them away
    # within r sigma_near of the truth on both dimensions: near draws with probability
    # erf(r / sqrt 2)^2, wide ones erf(r sigma_near / sigma / sqrt 2)^2; the counts at
    # r = 1 and 6 are binomial, which tests the share and the width at once
    erf2 = lambda x: float(torch.erf(torch.tensor(x / 2 ** 0.5))) ** 2
    for r in (1.0, 6.0):
        inside = int((z.abs() < r * sigma_near).all(1).sum())
        p = (1 - p_mean) * (p_near * erf2(r) + (1 - p_near) * erf2(r * sigma_near / sigma))
        assert binomtest(inside, n, p).pvalue > 6.3e-5
    # without p_near the sampler draws exactly what it drew before it had the option
    plain = GaussianUnionSampler(sigma=sigma, p_mean=p_mean)
    off = GaussianUnionSampler(sigma=sigma, p_mean=p_mean, sigma_near=sigma_near, p_near=0.0)
    torch.testing.assert_close(plain.sample(model, s_gt, torch.Generator().manual_seed(seed)),
                               off.sample(model, s_gt, torch.Generator().manual_seed(seed)),
                               rtol=0, atol=0)


def test_per_part_sigmas_and_per_dimension_mixing():
    model = model_with([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    model.s_names = ("alpha_1", "alpha_2", "beta")
    s = GaussianUnionSampler(sigma=0.2, sigmas={"alpha": 1.0, "beta": 0.0}, p_mean=0.0)
    draws = s.sample(model, torch.zeros(10_000, 3, dtype=torch.float64), torch.Generator().manual_seed(0))
    assert abs(draws[:, 0].std().item() - 1.0) < 0.05
    assert draws[:, 2].abs().max() == 0
    per_dim = GaussianUnionSampler(sigma=0.0, sigma_mean=0.0, p_mean=0.5, per="dimension")
    gt = torch.ones(10_000, 3, dtype=torch.float64)
    d = per_dim.sample(model, gt, torch.Generator().manual_seed(1))
    mixed = ((d == 0).any(1) & (d == 1).any(1)).double().mean().item()
    assert abs(mixed - 0.75) < 0.03  # 1 - P(all mean) - P(all gt) = 1 - 2/8


def test_same_seed_same_draws_and_bad_values():
    model = model_with([0.0], [1.0])
    gt = torch.zeros(5, 1, dtype=torch.float64)
    s = GaussianUnionSampler()
    a = s.sample(model, gt, torch.Generator().manual_seed(3))
    b = s.sample(model, gt, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="p_mean must be in"):
        GaussianUnionSampler(p_mean=1.5)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        GaussianUnionSampler(sigma=-1)
    with pytest.raises(ValueError, match="sigma_near must be >= 0, got -0.1"):
        GaussianUnionSampler(sigma_near=-0.1)
    with pytest.raises(ValueError, match="p_near must be in"):
        GaussianUnionSampler(p_near=2.0)


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=6))
def test_identity_model_round_trip(values):
    m = IdentityModel(names=[f"d{i}" for i in range(len(values))])
    s = torch.tensor([values], dtype=torch.float64)
    torch.testing.assert_close(m.fit(m.theta(s)), s)


@given(st.floats(-50, 50), st.floats(-50, 50))
def test_periodic_difference_is_the_shortest_way_round(a, b):
    m = IdentityModel(names=["x", "phase"], periods=[None, 2 * torch.pi])
    to = torch.tensor([[a, a]], dtype=torch.float64)
    frm = torch.tensor([[b, b]], dtype=torch.float64)
    d = m.difference(to, frm)
    assert d[0, 0] == a - b
    assert -torch.pi - 1e-9 <= d[0, 1] < torch.pi + 1e-9
    # the wrapped step lands on an angle equivalent to the target
    k = (frm[0, 1] + d[0, 1] - to[0, 1]) / (2 * torch.pi)
    assert abs(k - torch.round(k)) < 1e-9
    with pytest.raises(ValueError, match="periods has 1 entries but names has 2"):
        IdentityModel(names=["x", "y"], periods=[None])
