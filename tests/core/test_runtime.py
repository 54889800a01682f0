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


@pytest.mark.parametrize("kind", ["residual", "learned"])
def test_int8_runtime_stays_near_pytorch_and_caches_beside_the_float_graph(runs, cache, kind):
    import selfiter.runtime as runtime

    model = load(runs[kind], runtime="onnxruntime-int8")
    g = torch.Generator().manual_seed(1)
    inputs = torch.randn(9, 2, generator=g) * 2 + 1
    theta0 = model.initial_theta(9)
    ref = model.solver.solve(inputs, theta0, 3)
    got = model.solve(inputs, theta0, iterations=3)
    moved = float((ref.theta - theta0).abs().max())
    # int8 rounding is not exact, but it must stay a small fraction of the solve's move
    assert float((got.theta - ref.theta).abs().max()) <= 2 * runtime.INT8_RELATIVE_TOLERANCE * moved
    names = sorted(p.name for p in (cache / "onnx").glob("*.onnx"))
    assert len(names) == 2 and names[0].endswith("-k3-2-int8.onnx") and names[1].endswith("-k3-2.onnx")


def test_int8_graph_outside_its_tolerance_is_refused_and_not_cached(runs, cache, monkeypatch):
    import selfiter.runtime as runtime
    from selfiter.errors import SelfiterError

    inputs = torch.randn(4, 2, generator=torch.Generator().manual_seed(2))
    load(runs["residual"], runtime="onnxruntime").solve(inputs, iterations=2)  # the float graph
    monkeypatch.setattr(runtime, "INT8_RELATIVE_TOLERANCE", 0.0)
    monkeypatch.setattr(runtime, "CHECK_TOLERANCE", 0.0)
    model = load(runs["residual"], runtime="onnxruntime-int8")
    with pytest.raises(SelfiterError, match="onnxruntime-int8: the int8 graph differs from PyTorch"):
        model.solve(inputs, iterations=2)
    assert [p.name.endswith("-k2-2.onnx") for p in (cache / "onnx").iterdir()] == [True]


def test_the_cached_start_is_the_mean_state_and_each_call_gets_its_own_copy(runs):
    from selfiter.evaluation import initial_theta

    model = load(runs["residual"])
    first = model.initial_theta(3)
    first[0, 0] = float("nan")  # a caller may write into its start (the solver does not)
    again = model.initial_theta(3)
    assert_close(again, initial_theta(model.parameter_model, 3))
    assert torch.isfinite(again).all()
