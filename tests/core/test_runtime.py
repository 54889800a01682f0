"""The onnxruntime runtime: the whole unrolled solver as one cached ONNX graph solves like
PyTorch (toy problem, a learned extractor among them)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch.testing import assert_close

from selfiter.api import load
from selfiter.config import config_from_dict
from selfiter.errors import ConfigError
from selfiter.runtime import OnnxRuntimeSolver
from selfiter.training import train
from tests.core.toy_plugin import toy_config

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                                reason="onnxruntime is not installed (pip install -e '.[onnx]')")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtime")
    plain = train(config_from_dict(toy_config(steps=30)), root / "plain", progress=False)
    learned = toy_config(steps=30, states_per_input=2)
    learned["features"] = {"name": "toy_learned_residual"}
    return {"residual": plain,
            "learned": train(config_from_dict(learned), root / "learned", progress=False)}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFITER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("kind", ["residual", "learned"])
def test_onnxruntime_solves_like_pytorch_and_caches_the_graph(runs, cache, kind):
    model = load(runs[kind])
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(7, 2, generator=g) * 2 + 1
    theta0 = model.initial_theta(7)
    ref = model.solver.solve(inputs, theta0, 3)
    got = OnnxRuntimeSolver(model).solve(inputs, theta0, 3)
    assert_close(got.trajectory, ref.trajectory, atol=1e-5, rtol=1e-5)
    assert_close(got.theta, ref.theta, atol=1e-5, rtol=1e-5)
    assert got.steps.tolist() == [3] * 7 and not got.nonfinite.any()
    files = list((cache / "onnx").glob("*-k3-2.onnx"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = OnnxRuntimeSolver(load(runs[kind])).solve(inputs[:1], theta0[:1], 3)  # another batch
    assert files[0].stat().st_mtime_ns == stamp  # the cached graph, not a new export
    assert_close(again.theta, ref.theta[:1], atol=1e-5, rtol=1e-5)


def test_nonfinite_states_are_flagged_and_a_tolerance_is_refused(runs, cache):
    model = load(runs["residual"])
    solver = OnnxRuntimeSolver(model)
    theta0 = model.initial_theta(3)
    theta0[1, 0] = float("nan")
    out = solver.solve(torch.zeros(3, 2), theta0, 2)
    assert out.nonfinite.tolist() == [False, True, False]
    with pytest.raises(ConfigError, match="solver.tol=0.1: the onnxruntime runtime runs every"):
        solver.solve(torch.zeros(3, 2), theta0, 2, tol=0.1)
