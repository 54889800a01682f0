"""PcaSimilarityModel: the laws of Eq. 3 on synthetic shapes, its fit to real 300-W shapes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from face_landmarks.shape_model import PcaSimilarityModel
from selfiter.sampling import GaussianUnionSampler

TRAIN_FOLDERS = ("afw", "helen/trainset", "lfpw/trainset")


def read_pts(path: Path) -> np.ndarray:
    """One .pts file as ``(68, 2)`` 0-based pixel coordinates."""
    text = path.read_text()
    body = text[text.index("{") + 1:text.index("}")]
    return np.array(body.split(), dtype=np.float64).reshape(-1, 2) - 1.0


def rot90(p: torch.Tensor) -> torch.Tensor:
    return torch.stack((-p[..., 1], p[..., 0]), -1)


def similarity(theta: torch.Tensor, angle: float, factor: float,
               shift: tuple[float, float]) -> torch.Tensor:
    """``factor * R(angle) * p + shift`` for every point of ``theta: (B, 2L)``."""
    pts = theta.reshape(theta.shape[0], -1, 2)
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s], [s, c]], dtype=theta.dtype) * factor
    return (pts @ rot.T + torch.tensor(shift, dtype=theta.dtype)).reshape_as(theta)


def synthetic_shapes(n: int, seed: int = 0) -> torch.Tensor:
    """``(n, 136)`` px: a fixed 68-point shape, 6 deformation modes, noise, random poses."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    base, modes = randn(68, 2), 0.1 * randn(6, 68, 2)
    coef = randn(n, 6, 1, 1) * torch.linspace(1.0, 0.2, 6, dtype=torch.float64)[:, None, None]
    shapes = base + (coef * modes).sum(1) + 0.002 * randn(n, 68, 2)
    angle = 0.15 * randn(n)
    rot = torch.stack((torch.stack((angle.cos(), -angle.sin()), -1),
                       torch.stack((angle.sin(), angle.cos()), -1)), -2)
    f = 60.0 + 8.0 * randn(n, 1, 1)
    t = torch.tensor([128.0, 120.0], dtype=torch.float64) + 5.0 * randn(n, 1, 2)
    return (f * shapes @ rot.transpose(1, 2) + t).reshape(n, -1)


@pytest.fixture(scope="module")
def synth_theta() -> torch.Tensor:
    return synthetic_shapes(400)


@pytest.fixture(scope="module")
def synth_model(synth_theta) -> PcaSimilarityModel:
    model = PcaSimilarityModel(variance=0.999)
    model.fit_data(synth_theta)
    return model


@pytest.fixture(scope="module")
def real_theta(data_300w) -> torch.Tensor:
    files = sorted(f for d in TRAIN_FOLDERS for f in (data_300w / d).glob("*.pts"))
    return torch.from_numpy(np.stack([read_pts(f) for f in files]).reshape(len(files), -1))


@pytest.fixture(scope="module")
def real_model(real_theta) -> PcaSimilarityModel:
    model = PcaSimilarityModel()
    model.fit_data(real_theta)
    return model


def random_states(model: PcaSimilarityModel, n: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """``(n, K + 4)`` states spread over 2 training spreads, beta inside (-pi, pi), f > 0."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, model.s_dim, generator=g, dtype=torch.float64)
    s = model.s_mean() + 2.0 * model.s_std() * noise
    s[:, -2] = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * 3.1
    s[:, -1] = s[:, -1].abs()
    return s.to(dtype)


def test_names_and_units(synth_model):
    k = synth_model.k
    assert synth_model.s_names == (*(f"alpha_{i}" for i in range(1, k + 1)), "tx", "ty", "beta", "f")
    assert synth_model.s_units == ("1",) * k + ("px", "px", "rad", "px/unit")
    assert synth_model.theta_names[:4] == ("x_1", "y_1", "x_2", "y_2")
    assert synth_model.theta_dim == 136 and synth_model.theta_unit == "px"


def test_synthetic_modes_are_found(synth_model):
    # 6 deformation modes; the noise floor takes what variance=0.999 keeps beyond them
    assert 6 <= synth_model.k <= 12


def test_basis_normalised_and_orthogonal_to_similarities(synth_model):
    state = synth_model.state_dict()
    s0, a = state["S0"].reshape(68, 2), state["A"]
    assert_close(s0.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)
    assert_close(s0.pow(2).sum(-1).mean(), torch.tensor(1.0, dtype=torch.float64))
    assert_close(a.T @ a, torch.eye(a.shape[1], dtype=torch.float64), atol=1e-12, rtol=0)
    ex = torch.zeros(68, 2, dtype=torch.float64)
    ex[:, 0] = 1
    sim = torch.stack([s0, rot90(s0), ex, ex.flip(-1)]).reshape(4, -1)
    assert_close(sim @ a, torch.zeros(4, a.shape[1], dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 2e-4)])
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_fit_inverts_theta(synth_model, dtype, tol, seed):
    s = random_states(synth_model, 16, seed, dtype)
    theta = synth_model.theta(s)
    assert theta.dtype == dtype and theta.shape == (16, 136)
    back = synth_model.fit(theta)
    assert back.dtype == dtype
    # relative to each dimension's training spread: px, rad and alpha alike
    std = synth_model.s_std().to(dtype)
    assert_close(back / std, s / std, atol=tol, rtol=tol)


@given(alpha=st.floats(-3, 3), tx=st.floats(-400, 700),
       ty=st.floats(-400, 700), beta=st.floats(-3.14, 3.14), f=st.floats(0.5, 500))
@settings(max_examples=60, deadline=None)
def test_fit_inverts_theta_at_extremes(synth_model, alpha, tx, ty, beta, f):
    s = synth_model.s_mean().clone()
    s[0] = alpha * synth_model.s_std()[0]
    s[-4:] = torch.tensor([tx, ty, beta, f], dtype=torch.float64)
    assert_close(synth_model.fit(synth_model.theta(s[None]))[0], s, atol=1e-9, rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(angle=st.floats(-3.0, 3.0), factor=st.floats(0.2, 5.0),
       dx=st.floats(-300, 300), dy=st.floats(-300, 300))
def test_fit_is_similarity_equivariant(synth_model, synth_theta, angle, factor, dx, dy):
    theta = synth_theta[:8]
    s = synth_model.fit(theta)
    moved = synth_model.fit(similarity(theta, angle, factor, (dx, dy)))
    k = synth_model.k
    assert_close(moved[:, :k], s[:, :k], atol=1e-9, rtol=1e-9)  # the shape does not change
    t = similarity(s[:, k:k + 2], angle, factor, (dx, dy))
    assert_close(moved[:, k:k + 2], t, atol=1e-8, rtol=1e-9)
    turn = moved[:, k + 2] - s[:, k + 2] - angle
    wrapped = torch.atan2(turn.sin(), turn.cos())
    assert_close(wrapped, torch.zeros(8, dtype=torch.float64), atol=1e-9, rtol=0)
    assert_close(moved[:, k + 3], s[:, k + 3] * factor)


def test_pose_means_centroid_and_rms_radius(synth_model, synth_theta):
    s = synth_model.fit(synth_theta)
    pts = synth_theta.reshape(-1, 68, 2)
    assert_close(s[:, -4:-2], pts.mean(1))
    # theta of the mean shape at the fitted pose: f is its RMS radius in px
    shape_only = s.clone()
    shape_only[:, :synth_model.k] = 0
    c = synth_model.theta(shape_only).reshape(-1, 68, 2) - pts.mean(1, keepdim=True)
    assert_close(c.pow(2).sum(-1).mean(-1).sqrt(), s[:, -1])


def test_batch_and_device_dtype_follow_input(synth_model, synth_theta):
    one = synth_model.fit(synth_theta[3:4])
    assert_close(synth_model.fit(synth_theta)[3:4], one, atol=1e-12, rtol=0)
    assert synth_model.fit(synth_theta.float()).dtype == torch.float32


def test_state_dict_round_trip(synth_model, synth_theta):
    state = synth_model.state_dict()
    assert set(state) == {"S0", "A", "mean", "std"}
    assert all(v.dtype == torch.float64 for v in state.values())
    fresh = PcaSimilarityModel()
    fresh.load_state_dict(state)
    assert fresh.s_names == synth_model.s_names and fresh.s_units == synth_model.s_units
    assert_close(fresh.fit(synth_theta), synth_model.fit(synth_theta), atol=0, rtol=0)
    assert_close(fresh.s_std(), synth_model.s_std(), atol=0, rtol=0)
    with pytest.raises(ValueError, match="does not fit"):
        fresh.load_state_dict({**state, "mean": state["mean"][:-1]})
    with pytest.raises(ValueError, match="lacks"):
        fresh.load_state_dict({"S0": state["S0"]})


def test_unfitted_model_says_so():
    with pytest.raises(RuntimeError, match="fit_data"):
        PcaSimilarityModel().fit(torch.zeros(1, 136))
    assert PcaSimilarityModel().state_dict() == {}


def test_bad_arguments_are_rejected(synth_theta):
    with pytest.raises(ValueError):
        PcaSimilarityModel(variance=0.0)
    with pytest.raises(ValueError):
        PcaSimilarityModel(n_components=0)
    with pytest.raises(ValueError, match="exceeds"):
        PcaSimilarityModel(n_components=200).fit_data(synth_theta)
    with pytest.raises(ValueError, match="non-finite"):
        PcaSimilarityModel().fit_data(synth_theta.clone().fill_(float("nan")))


def test_n_components_overrides_variance(synth_theta):
    model = PcaSimilarityModel(variance=0.5, n_components=9)
    model.fit_data(synth_theta)
    assert model.k == 9 and model.s_dim == 13


def test_sampler_draws_with_sigma_times_s_std(synth_model, synth_theta):
    s_gt = synth_model.fit(synth_theta[:1]).expand(40000, -1)
    g = torch.Generator().manual_seed(0)
    sigma, n = 0.3, s_gt.shape[0]
    expected = sigma * synth_model.s_std()
    draws = GaussianUnionSampler(sigma=sigma, p_mean=0.0).sample(synth_model, s_gt, g)
    dev = draws - s_gt
    # 5 standard errors of the mean and of the standard deviation
    assert (dev.mean(0).abs() < 5 * expected / math.sqrt(n)).all()
    assert ((dev.std(0) / expected - 1).abs() < 5 / math.sqrt(2 * n)).all()
    around_mean = GaussianUnionSampler(sigma=sigma, p_mean=1.0).sample(synth_model, s_gt, g)
    off_mean = (around_mean - synth_model.s_mean()).mean(0)
    assert (off_mean.abs() < 5 * expected / math.sqrt(n)).all()
    # the draws are states of the model: they survive the trip through theta
    assert_close(synth_model.fit(synth_model.theta(draws[:500])), draws[:500], atol=1e-9, rtol=1e-9)


# ----------------------------------------------------------------- real 300-W shapes


def test_real_mean_and_spread_are_those_of_training(real_model, real_theta):
    s = real_model.fit(real_theta)
    k = real_model.k
    # alpha has mean zero over training: the Procrustes iteration converged
    assert (s[:, :k].mean(0).abs() < 1e-6 * real_model.s_std()[:k]).all()
    assert_close(real_model.s_mean()[:k], torch.zeros(k, dtype=torch.float64), atol=0, rtol=0)
    assert_close(real_model.s_mean()[k:k + 2], s[:, k:k + 2].mean(0))
    assert_close(real_model.s_std(), s.std(0))
    # rotation anchored to the faces as annotated (upright): mean beta near 0
    assert abs(float(real_model.s_mean()[k + 2])) < 1e-3


def test_real_components_keep_the_asked_variance(real_model, real_theta):
    s = real_model.fit(real_theta)
    k = real_model.k
    state = real_model.state_dict()
    pts = real_theta.reshape(-1, 68, 2)
    # the residual in S0's frame: R^-1 (theta - t) / f - S0, which alpha projects
    beta, f = s[:, k + 2, None], s[:, k + 3, None]
    c = pts - s[:, None, k:k + 2]
    x, y = c[..., 0], c[..., 1]
    unrot = torch.stack((beta.cos() * x + beta.sin() * y,
                         -beta.sin() * x + beta.cos() * y), -1) / f[..., None]
    resid = (unrot - state["S0"].reshape(68, 2)).reshape(len(s), -1)
    total = resid.var(0).sum()
    kept = s[:, :k].var(0).cumsum(0) / total
    assert kept[-1] >= 0.97 > kept[-2]


def test_real_pca_reconstruction_error_is_small(real_model, real_theta):
    rebuilt = real_model.theta(real_model.fit(real_theta)).reshape(-1, 68, 2)
    pts = real_theta.reshape(-1, 68, 2)
    err = (rebuilt - pts).norm(dim=-1).mean(-1)  # (N,) mean point error, px
    ocular = (pts[:, 36] - pts[:, 45]).norm(dim=-1)  # outer eye corners
    assert float((err / ocular).mean()) < 0.02
    assert float((err / ocular).max()) < 0.06


def test_real_round_trip(real_model):
    s = random_states(real_model, 256, seed=1)
    assert_close(real_model.fit(real_model.theta(s)), s, atol=1e-9, rtol=1e-9)
    s32 = s.float()
    std = real_model.s_std().float()
    assert_close(real_model.fit(real_model.theta(s32)) / std, s32 / std, atol=2e-4, rtol=2e-4)
