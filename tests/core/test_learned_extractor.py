"""A feature extractor with learned weights: the laws of encode-once solving and of
M training states sharing one encoding, and training with it (toy problem)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

import selfiter
from selfiter.config import config_from_dict
from selfiter.errors import ConfigError
from selfiter.evaluation import score
from selfiter.regressors import MLPRegressor
from selfiter.solver import LearnedModel, make_solver
from selfiter.training import train
from tests.core.toy_plugin import LearnedResidual, toy_config


def toy_model(dim: int, seed: int, dtype: torch.dtype) -> LearnedModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LearnedModel(LearnedResidual(dim), [MLPRegressor((dim,), dim, hidden=[8])])
    return model.to(dtype).eval()


@st.composite
def solve_cases(draw):
    """(model, inputs, theta0, iterations): a random toy model and batch."""
    b, d = draw(st.integers(1, 30)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(b, d, generator=g, dtype=dtype) * 2
    theta0 = torch.randn(b, d, generator=g, dtype=dtype)
    return toy_model(d, seed, dtype), inputs, theta0, draw(st.integers(0, 5))


@settings(max_examples=40)
@given(solve_cases())
def test_solving_on_the_cached_encoding_equals_encoding_at_every_iteration(case):
    model, inputs, theta0, iterations = case
    model.extractor.encodes = 0
    out = make_solver(model).solve(inputs, theta0, iterations)
    assert model.extractor.encodes == inputs.shape[0]  # once per input, whatever K
    theta, expected = theta0.clone(), [theta0]
    with torch.no_grad():
        for k in range(iterations):
            theta = theta + model.step(model.encode(inputs), theta, k).to(theta.dtype)
            expected.append(theta)
    assert_close(out.trajectory, torch.stack(expected))


@st.composite
def shared_cases(draw):
    """(model, inputs: (B, D), theta: (B*M, D), M)."""
    b, m, d = draw(st.integers(1, 8)), draw(st.integers(1, 6)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(b, d, generator=g, dtype=dtype)
    theta = torch.randn(b * m, d, generator=g, dtype=dtype)
    return toy_model(d, seed, dtype).train(), inputs, theta, m


def loss_and_grads(model: LearnedModel, inputs: torch.Tensor, theta: torch.Tensor):
    model.zero_grad()
    delta, _, _ = model(inputs, theta)
    loss = (delta - 1.0).pow(2).mean()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def assert_sharing_is_copying(model: LearnedModel, inputs: torch.Tensor, theta: torch.Tensor,
                              m: int, **tol) -> None:
    """The law: M states sharing one encoding give the loss and gradients of M copies."""
    shared_loss, shared_grads = loss_and_grads(model, inputs, theta)
    copy_loss, copy_grads = loss_and_grads(model, inputs.repeat_interleave(m, 0), theta)
    assert_close(shared_loss, copy_loss, **tol)
    for a, b in zip(shared_grads, copy_grads):
        assert_close(a, b, **tol)


@settings(max_examples=40)
@given(shared_cases())
def test_m_states_sharing_one_encoding_give_the_loss_and_gradients_of_m_copies(case):
    model, inputs, theta, m = case
    assert_sharing_is_copying(model, inputs, theta, m)


def test_a_batch_of_states_must_be_a_multiple_of_the_inputs():
    model = toy_model(2, 0, torch.float32)
    with pytest.raises(ValueError, match="not a multiple of the 3 inputs"):
        model(torch.zeros(3, 2), torch.zeros(4, 2))


def learned_config(**train) -> dict:
    cfg = toy_config(**train)
    cfg["features"] = {"name": "toy_learned_residual"}
    return cfg


def test_a_learned_extractor_trains_with_shared_states_and_its_weights_are_saved(tmp_path):
    cfg = config_from_dict(learned_config(states_per_input=4, batch_size=16))
    ckpt = train(cfg, tmp_path / "run", progress=False)
    model = selfiter.load(ckpt)
    fresh = LearnedResidual(2)
    # the encoder's weights were trained (moved from their start) and came back from the file
    assert not torch.allclose(model.extractor.linear.weight, fresh.linear.weight, atol=1e-3)
    data = model.problem.load("test")
    ev = score(model.problem, data, model.solve(data.inputs, iterations=3), "test")
    assert ev.per_iteration[-1]["err"] < 0.1 * ev.per_iteration[0]["err"]


def test_a_cascade_with_a_learned_extractor_is_refused_in_one_line(tmp_path):
    cfg = config_from_dict(learned_config(mode="cascade", stages=2), source="toy.yaml")
    with pytest.raises(ConfigError, match="train.mode: cascade .* 'toy_learned_residual' has "
                                          "learned weights; use mode sir") as err:
        train(cfg, tmp_path / "run", progress=False)
    assert "\n" not in str(err.value)
