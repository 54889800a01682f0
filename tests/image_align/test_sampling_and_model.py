"""The corner parameter model, and the core's Gaussian-union sampler on it."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from image_align.parameter_model import CORNER_NAMES, CornerModel
from selfiter import plugins


def test_the_mean_is_the_identity_and_the_spread_is_fitted_about_it():
    m = CornerModel()
    g = torch.Generator().manual_seed(0)
    theta = (torch.rand(20000, 8, generator=g) * 2 - 1) * 30 + 5  # a mean of 5 px must not move S0
    m.fit_data(theta)
    assert_close(m.s_mean(), torch.zeros(8))
    assert_close(m.s_std(), theta.pow(2).mean(0).sqrt())
    assert m.s_names == m.theta_names == CORNER_NAMES and m.theta_unit == "px"
    assert_close(m.theta(theta[:5]), theta[:5])
    assert_close(m.fit(theta[:5]), theta[:5])


def test_a_configured_scale_is_kept_and_the_state_round_trips():
    m = CornerModel(scale=4.0)
    m.fit_data(torch.randn(100, 8) * 50)
    assert_close(m.s_std(), torch.full((8,), 4.0))
    other = CornerModel()
    other.load_state_dict(m.state_dict())
    assert_close(other.s_std(), m.s_std())
    with pytest.raises(ValueError, match="scale must be > 0"):
        CornerModel(scale=0.0)
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        m.fit_data(torch.zeros(10, 4))


def gaussian_union(**params):
    return plugins.get("sampler", "gaussian_union").obj(**params)


def test_the_core_sampler_draws_around_the_identity_and_the_truth_in_units_of_s_std():
    model = CornerModel()
    std = torch.tensor([2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0])
    model.fit_data(torch.randn(400000, 8, generator=torch.Generator().manual_seed(1)) * std)
    n = 40000
    s_gt = torch.full((n, 8), 100.0)  # far from the identity, so the two centres separate
    g = torch.Generator().manual_seed(0)
    s = gaussian_union(sigma=0.5, sigma_mean=0.25, p_mean=0.3).sample(model, s_gt, g)
    at_mean = s.abs().mean(1) < 50  # (N,)
    assert abs(float(at_mean.float().mean()) - 0.3) < 0.015
    around_mean, around_gt = s[at_mean], s[~at_mean] - 100.0
    assert_close(around_mean.mean(0), torch.zeros(8), atol=0.05 * 16, rtol=0)
    assert_close(around_mean.std(0), 0.25 * std, rtol=0.04, atol=0)
    assert_close(around_gt.mean(0), torch.zeros(8), atol=0.05 * 16, rtol=0)
    assert_close(around_gt.std(0), 0.5 * std, rtol=0.04, atol=0)


def test_the_sampler_is_reproducible_from_its_seed():
    model = CornerModel(scale=10.0)
    s_gt = torch.randn(64, 8) * 10
    sampler = gaussian_union(sigma=0.3, sigma_mean=0.1)
    a = sampler.sample(model, s_gt, torch.Generator().manual_seed(5))
    b = sampler.sample(model, s_gt, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
