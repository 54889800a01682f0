"""The curve_fit plugin: signal model, problem data, features, metrics, and a trained solver."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from curve_fit.features import CURVE_LIMIT, ResidualFeatures
from curve_fit.problem import SUCCESS_THRESHOLD, CurveFit
from curve_fit.signal import (NAMES, UNITS, box, canonical, damped_sine, normalised_error,
                              residual_fn, theta_error, time_grid)
from selfiter import plugins
from selfiter.api import load
from selfiter.build import build_components, build_problem
from selfiter.cli.main import main as cli_main
from selfiter.config import load_config
from selfiter.errors import ConfigError
from selfiter.sampling import GaussianUnionSampler
from selfiter.solver import GaussNewtonSolver
from selfiter.training import train

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "curve_fit.yaml"
WIDE = EXAMPLE.with_name("curve_fit_wide.yaml")

# parameters well outside the box too: the model and the symmetries hold everywhere
thetas = arrays(np.float64, (5, 4), elements=st.floats(-8.0, 8.0, allow_nan=False))
# no deadline: two shared CPU cores make single examples slow at random
quick = settings(deadline=None, max_examples=50)


def numpy_damped_sine(theta: np.ndarray, t: np.ndarray) -> np.ndarray:
    a, l, w, p = (theta[:, i:i + 1] for i in range(4))
    return a * np.exp(-l * t) * np.sin(w * t + p)


def box_thetas(n: int, seed: int, w_max: float = 6.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low, high = box(1.0, w_max)
    return low + (high - low) * torch.rand(n, 4, generator=g)


# --- the signal model -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@quick
@given(theta=thetas, t_max=st.floats(0.5, 4.0))
def test_damped_sine_matches_numpy(theta, t_max, dtype):
    t = time_grid(32, t_max)
    theta_t = torch.tensor(theta, dtype=dtype)
    got = damped_sine(theta_t, t)
    want = numpy_damped_sine(theta_t.double().numpy(), t.double().numpy())
    assert got.dtype == dtype and got.shape == (5, 32)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got.double().numpy(), want, rtol=tol, atol=tol * scale)


def test_damped_sine_broadcasts_one_sample():
    theta = box_thetas(3, 0)
    t = time_grid(16, 2.0)
    assert torch.equal(damped_sine(theta[1], t), damped_sine(theta, t)[1])


@quick
@given(theta=thetas)
def test_canonical_keeps_the_curve_and_is_idempotent(theta):
    theta = torch.tensor(theta)
    c = canonical(theta)
    t = time_grid(32, 4.0)
    # sin(pi) is 1e-16, not 0, so the tolerance follows the envelope a exp(-l t)
    scale = (theta[:, :1].abs() * torch.exp(-theta[:, 1:2] * t)).max().clamp_min(1.0)
    assert torch.allclose(damped_sine(c, t), damped_sine(theta, t), atol=1e-9 * float(scale))
    assert (c[:, 0] >= 0).all() and (c[:, 2] >= 0).all()
    assert (c[:, 3] >= -math.pi).all() and (c[:, 3] < math.pi).all()
    assert torch.allclose(canonical(c), c, atol=1e-12)


@quick
@given(theta=thetas, k=st.integers(-3, 3))
def test_error_is_zero_between_parameters_of_one_curve(theta, k):
    theta = torch.tensor(theta)
    a, l, w, p = theta.unbind(1)
    # a = 0 (a flat curve) and w = 0 (where p and pi - p coincide) have more symmetries
    a, w = (torch.where(x < 0, -1.0, 1.0) * (0.1 + x.abs()) for x in (a, w))
    theta = torch.stack([a, l, w, p], 1)
    turn = 2 * math.pi * k
    for same in (torch.stack([a, l, w, p + turn], 1), torch.stack([-a, l, w, p + math.pi], 1),
                 torch.stack([a, l, -w, math.pi - p + turn], 1), torch.stack([-a, l, -w, -p], 1)):
        assert torch.allclose(theta_error(same, theta), torch.zeros_like(theta), atol=1e-9)


@pytest.mark.parametrize("w_max", [6.0, 20.0])
def test_normalised_error_scale(w_max):
    problem = CurveFit(n_train=8, w_max=w_max)
    gt = box_thetas(4, 1, w_max)
    off = gt.clone()
    off[:, 2] += 0.05 * (w_max - 1.0)  # 5% of w's range, the other three exact
    want = torch.full((4,), 0.05 / 2, dtype=gt.dtype)
    assert torch.allclose(problem.normalised_error(off, gt), want)
    assert torch.allclose(normalised_error(off, gt, problem.width), want)
    off[:, 3] += 0.05 * 2 * math.pi  # and 5% of the phase's
    assert torch.allclose(problem.normalised_error(off, gt), want * math.sqrt(2))


# --- the problem ------------------------------------------------------------------


@quick
@given(theta=arrays(np.float32, (5, 4), elements=st.floats(-1e6, 1e6, width=32)))
def test_every_finite_state_gives_finite_features_that_match_the_curve_below_the_cap(theta):
    theta = torch.from_numpy(theta)
    fe = ResidualFeatures()
    y = damped_sine(box_thetas(5, 0), fe.t)  # (5, T) curves of the box
    feats = fe.features(y, theta)
    assert torch.isfinite(feats).all()
    exact = damped_sine(theta, fe.t)  # (5, T), inf or NaN where the curve overflows
    below = exact.abs() <= CURVE_LIMIT  # False for NaN
    curve = feats[:, fe.t.shape[0]:2 * fe.t.shape[0]]
    torch.testing.assert_close(curve[below], exact[below])
    assert (curve.abs() <= CURVE_LIMIT).all()


def test_residual_zero_at_truth():
    problem = CurveFit(n_train=8, n_val=4, n_test=4, noise=0.0)
    data = problem.load("test")
    r = torch.func.vmap(residual_fn(problem.t))(data.inputs, data.theta_gt)
    assert r.shape == data.inputs.shape and r.abs().max() < 1e-6
    feats = ResidualFeatures(64, 4.0).features(data.inputs, data.theta_gt)
    assert feats[:, :64].abs().max() < 1e-6
    torch.testing.assert_close(feats[:, 64:128], data.inputs)
    torch.testing.assert_close(feats[:, 128:], data.theta_gt)


def test_data_deterministic_per_seed_and_split():
    a, b = CurveFit(n_train=50, seed=3), CurveFit(n_train=50, seed=3)
    for split in a.splits:
        x, y = a.load(split), b.load(split)
        assert torch.equal(x.inputs, y.inputs) and torch.equal(x.theta_gt, y.theta_gt)
    train_, val, test = (a.load(s) for s in ("train", "val", "test"))
    assert not torch.equal(train_.theta_gt[:10], val.theta_gt[:10])
    assert not torch.equal(val.theta_gt[:10], test.theta_gt[:10])
    assert not torch.equal(CurveFit(n_train=50, seed=4).load("train").theta_gt, train_.theta_gt)


def test_data_shapes_range_and_noise():
    problem = CurveFit(n_train=4000, t_points=48, t_max=3.0, noise=0.1)
    data = problem.load("train")
    assert data.inputs.shape == (4000, 48) and data.theta_gt.shape == (4000, 4)
    assert (data.theta_gt >= problem.low).all() and (data.theta_gt < problem.high).all()
    noise = data.inputs - damped_sine(data.theta_gt, problem.t)
    assert abs(float(noise.std()) - 0.1) < 0.005 and abs(float(noise.mean())) < 0.005


def test_box_is_configurable_and_the_default_is_unchanged():
    default, wide = CurveFit(n_train=2000), CurveFit(n_train=2000, w_min=2.0, w_max=20.0)
    assert default.low.tolist() == pytest.approx([0.5, 0.0, 1.0, -math.pi])
    assert default.high.tolist() == pytest.approx([2.0, 1.0, 6.0, math.pi])
    assert wide.width.tolist() == pytest.approx([1.5, 1.0, 18.0, 2 * math.pi])
    w = wide.load("train").theta_gt[:, 2]
    assert 2.0 <= float(w.min()) < 2.5 and 19.5 < float(w.max()) < 20.0
    # the box draws the same numbers per seed: only w's scale and offset differ
    torch.testing.assert_close(default.load("train").theta_gt[:, :2], wide.load("train").theta_gt[:, :2])


@pytest.mark.parametrize("params, name", [
    ({"w_min": 0.0}, "w_min"),
    ({"w_min": float("nan")}, "w_min"),
    ({"w_min": 5.0, "w_max": 5.0}, "w_max"),
    ({"w_max": float("inf")}, "w_max"),
    ({"w_max": 50.0}, "w_max"),  # above pi * 63 / 4 = 49.5 rad/s, the grid's Nyquist frequency
])
def test_bad_box_is_a_clear_error(params, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        CurveFit(**params)


def test_a_finer_grid_allows_higher_frequencies():
    assert float(CurveFit(t_points=128, w_max=50.0).high[2]) == 50.0


def test_bad_box_in_a_config_names_the_param():
    cfg = load_config(EXAMPLE, ["problem.params.w_max=0.5"])
    with pytest.raises(ConfigError, match="w_max must be > w_min"):
        build_problem(cfg)
    with pytest.raises(ConfigError, match="problem.params.w_min: expected a number"):
        load_config(EXAMPLE, ["problem.params.w_min=fast"])


def test_augment_redraws_only_the_noise():
    problem = CurveFit(n_train=64, noise=0.05)
    data = problem.load("train")
    y, theta = problem.augment(data.inputs, data.theta_gt, torch.Generator().manual_seed(0))
    assert torch.equal(theta, data.theta_gt) and not torch.equal(y, data.inputs)
    assert float((y - damped_sine(theta, problem.t)).std()) == pytest.approx(0.05, rel=0.1)


def test_metrics_at_and_near_the_truth():
    problem = CurveFit(n_test=200)
    data = problem.load("test")
    exact = problem.metrics(data.theta_gt, data)
    assert list(exact)[:3] == ["param_err", "success", "rmse"]
    assert exact["param_err"] == 0 and exact["success"] == 100 and exact["rmse"] == 0
    # (-a, l, -w, -p + 4 pi) draws the same curve, so it is an exact fit too
    same = data.theta_gt * torch.tensor([-1.0, 1, -1, -1]) + torch.tensor([0, 0, 0, 4 * math.pi])
    assert problem.metrics(same, data)["param_err"] < 1e-6
    far = data.theta_gt + torch.tensor([0.0, 0.0, 1.5, 0.0])  # w off by 1.5 rad/s: a wrong fit
    scores = problem.metrics(far, data)
    assert scores["success"] == 0 and scores["w_err"] == pytest.approx(1.5, rel=1e-5)
    assert 2 * SUCCESS_THRESHOLD < scores["param_err"]
    nan = problem.metrics(torch.full_like(data.theta_gt, float("nan")), data)
    assert math.isnan(nan["param_err"]) and nan["success"] == 0


def test_unknown_split_and_bad_features_are_clear():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        CurveFit().load("dev")
    with pytest.raises(ValueError, match="t_points"):
        ResidualFeatures(t_points=32).feature_shape((64,), 4)
    assert ResidualFeatures(64, with_curve=False, with_theta=False).feature_shape((64,), 4) == (64,)
    assert ResidualFeatures(64).feature_shape((64,), 4) == (132,)


def test_gauss_newton_converges_near_the_truth():
    problem = CurveFit(n_test=64, noise=0.0)
    data = problem.load("test")
    g = torch.Generator().manual_seed(0)
    theta0 = data.theta_gt + 0.02 * torch.tensor([1.5, 1.0, 5.0, 6.0]) * torch.randn(64, 4, generator=g)
    res = GaussNewtonSolver(residual_fn(problem.t)).solve(data.inputs, theta0, 10)
    assert problem.normalised_error(res.theta, data.theta_gt).max() < 1e-4


# --- the plugin and a trained solver -----------------------------------------------


def test_plugin_registers_its_components():
    assert plugins.get("problem", "curve_fit").plugin == "curve_fit"
    assert plugins.get("feature_extractor", "residual").plugin == "curve_fit"
    cfg = load_config(EXAMPLE)
    assert (cfg.parameter_model.name, cfg.sampler.name, cfg.regressor.name) == (
        "identity", "gaussian_union", "mlp")
    assert cfg.parameter_model.params["names"] == list(NAMES)
    assert cfg.parameter_model.params["units"] == list(UNITS)
    assert cfg.features.params["t_points"] == cfg.problem.params["t_points"]
    assert cfg.features.params["t_max"] == cfg.problem.params["t_max"]


@pytest.mark.parametrize("example", [EXAMPLE, WIDE], ids=lambda p: p.name)
def test_example_configs_reach_their_components(example):
    cfg = load_config(example)
    parts = build_components(cfg)
    assert parts.parameter_model.periods == [None, None, None, pytest.approx(2 * math.pi)]
    # the phase target takes the shortest way round, the others do not wrap
    step = parts.parameter_model.difference(torch.tensor([[0.0, 0.0, 9.0, 3.0]]),
                                            torch.tensor([[0.0, 0.0, 0.0, -3.0]]))
    torch.testing.assert_close(step, torch.tensor([[0.0, 0.0, 9.0, 6.0 - 2 * math.pi]]))
    assert cfg.parameter_model.params["names"] == list(NAMES)
    assert cfg.parameter_model.params["units"] == list(UNITS)
    for key in ("t_points", "t_max"):
        assert cfg.features.params[key] == cfg.problem.params[key]
    assert float(parts.problem.high[2]) == cfg.problem.params.get("w_max", 6.0)


def test_wide_example_spans_many_periods():
    problem = build_problem(load_config(WIDE))
    periods = float(problem.high[2]) * float(problem.t[-1]) / (2 * math.pi)
    assert periods > 10


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The example config, trained for a few seconds on a small training set."""
    cfg = load_config(EXAMPLE, [
        "train.steps=800", "train.lr=0.003", "train.warmup_steps=0", "train.val_split=null",
        "train.val_every=0", "regressor.params.hidden=[128, 128]",
        "problem.params.n_train=2000", "problem.params.n_val=10", "problem.params.n_test=300",
    ])
    return train(cfg, tmp_path_factory.mktemp("curve_fit") / "run", progress=False)


def test_trained_solver_lowers_the_error_from_far_starts(trained):
    model = load(trained)
    data = model.problem.load("test")
    # starts from the wide, around-the-mean half of the training distribution
    sampler = GaussianUnionSampler(sigma=2.0, p_mean=1.0)
    s0 = sampler.sample(model.parameter_model, data.theta_gt, torch.Generator().manual_seed(1))
    theta0 = model.parameter_model.theta(s0)
    res = model.solve(data.inputs, theta0)
    before = model.problem.normalised_error(theta0, data.theta_gt)
    after = model.problem.normalised_error(res.theta, data.theta_gt)
    assert not res.nonfinite.any()
    assert model.parameter_model.periods[3] == pytest.approx(2 * math.pi)  # from the checkpoint
    assert float((after < before).float().mean()) >= 0.9
    assert float(after.mean()) < 0.3 * float(before.mean())


def test_cli_evaluates_the_trained_solver(trained, tmp_path, capsys):
    out = tmp_path / "scores.json"
    code = cli_main(["evaluate", str(EXAMPLE), "--checkpoint", str(trained), "--split", "test",
                     "--set", "problem.params.n_test=100", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    scores = json.loads(out.read_text())
    assert scores["n"] == 100
    assert scores["per_iteration"][-1]["param_err"] < 0.5 * scores["per_iteration"][0]["param_err"]



def test_predict_fits_raw_curves(trained):
    model = load(trained)
    data = model.problem.load("test")
    fits = model.predict(data.inputs[:3].numpy())
    assert [sorted(f) for f in fits] == [sorted(["a", "l", "w", "p", "rmse"])] * 3
    one = model.predict(data.inputs[0].tolist())
    assert one[0] == pytest.approx(fits[0], rel=1e-5)
    with pytest.raises(ValueError, match="expected curves of 64 samples"):
        model.predict([0.0] * 10)
