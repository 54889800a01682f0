"""``selfiter export``: the unrolled solver and the regressor as ONNX / TorchScript, checked
against PyTorch on the toy problem."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import yaml

from selfiter.api import load
from selfiter.cli.main import main
from selfiter.config import config_from_dict
from selfiter.errors import ConfigError
from selfiter.export import UnrolledSolver, export, max_difference, run_onnx, run_torchscript
from selfiter.training import train
from tests.core.toy_plugin import toy_config

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
HAS_ONNXSCRIPT = importlib.util.find_spec("onnxscript") is not None
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed "
                                                   "(pip install -e '.[onnx]')")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A toy SIR run (3 iterations) and a cascade run (2 stages)."""
    root = tmp_path_factory.mktemp("export")
    sir = train(config_from_dict(toy_config(steps=20)), root / "sir", progress=False)
    cascade = train(config_from_dict(toy_config(mode="cascade", stages=2, steps=10)),
                    root / "cascade", progress=False)
    return sir, cascade


@pytest.fixture
def inputs():
    return torch.randn(5, 2, generator=torch.Generator().manual_seed(0)) * 2 + 1


def test_unrolled_module_is_the_solver_loop(toy_run, inputs):
    model = load(toy_run[0])
    theta0 = model.initial_theta(5)
    with torch.no_grad():
        theta, trajectory = UnrolledSolver(model.model, 3)(inputs, theta0)
    ref = model.solve(inputs, theta0, iterations=3)
    assert trajectory.shape == (4, 5, 2)
    torch.testing.assert_close(trajectory, ref.trajectory)
    torch.testing.assert_close(theta, ref.theta)


exporters = [pytest.param("dynamo", marks=pytest.mark.skipif(
                 not HAS_ONNXSCRIPT, reason="the dynamo exporter needs onnxscript")),
             "legacy"]


@needs_ort
@pytest.mark.parametrize("exporter", exporters)
@pytest.mark.parametrize("run", ["sir", "cascade"])
def test_onnx_solver_matches_pytorch_on_another_batch_size(toy_run, inputs, tmp_path, exporter, run):
    model = load(toy_run[0] if run == "sir" else toy_run[1])
    k = 3 if run == "sir" else 2
    result = export(model, tmp_path / "solver.onnx", inputs[:2], "onnx", "solver", k, exporter)
    assert result.iterations == k and result.path.is_file()
    assert max_difference(result) < 1e-5
    theta0 = model.initial_theta(5)
    theta, trajectory = run_onnx(result.path, (inputs, theta0))  # batch 5, traced with 2
    ref = model.solve(inputs, theta0, iterations=k)
    assert trajectory.shape == (k + 1, 5, 2)
    np.testing.assert_allclose(trajectory, ref.trajectory.numpy(), atol=1e-5)
    np.testing.assert_allclose(theta, ref.theta.numpy(), atol=1e-5)


@needs_ort
def test_onnx_regressor_alone(toy_run, inputs, tmp_path):
    model = load(toy_run[0])
    result = export(model, tmp_path / "reg.onnx", inputs[:2], "onnx", "regressor", exporter="legacy")
    features = model.extractor.features(inputs, model.initial_theta(5))
    (delta,) = run_onnx(result.path, (features,))
    with torch.no_grad():
        np.testing.assert_allclose(delta, model.regressors[0](features).numpy(), atol=1e-5)


def test_torchscript_solver(toy_run, inputs, tmp_path):
    model = load(toy_run[0])
    result = export(model, tmp_path / "solver.pt", inputs[:2], "torchscript", "solver", 3)
    assert max_difference(result) == 0.0
    theta, trajectory = run_torchscript(result.path, (inputs, model.initial_theta(5)))
    np.testing.assert_allclose(trajectory, model.solve(inputs, iterations=3).trajectory.numpy(),
                               atol=1e-6)


def test_export_refuses_what_it_cannot_do(toy_run, inputs, tmp_path):
    sir, cascade = (load(p) for p in toy_run)
    with pytest.raises(ConfigError, match="at least 2 example inputs"):
        export(sir, tmp_path / "x.onnx", inputs[:1])
    with pytest.raises(ConfigError, match="at most 2"):
        export(cascade, tmp_path / "x.onnx", inputs[:2], iterations=3)
    with pytest.raises(ConfigError, match="a cascade has 2 regressors"):
        export(cascade, tmp_path / "x.onnx", inputs[:2], part="regressor")
    with pytest.raises(ConfigError, match="format 'tflite'"):
        export(sir, tmp_path / "x.tfl", inputs[:2], "tflite")  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())  # nothing half-written


@needs_ort
def test_cli_exports_and_checks_the_graph(toy_run, tmp_path, capsys):
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump(toy_config()))
    out = tmp_path / "toy.onnx"
    assert main(["export", str(cfg), "--checkpoint", str(toy_run[0]), "--format", "onnx",
                 "-o", str(out), "--exporter", "legacy", "--iterations", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (onnx, solver unrolled 2 iteration(s))" in printed
    diff = float(printed.split("PyTorch| on 2 samples: ")[1].split()[0])
    assert diff < 1e-5
    assert main(["export", str(cfg), "--checkpoint", str(toy_run[0]), "--format", "onnx",
                 "-o", str(out), "--exporter", "legacy", "--iterations", "0"]) == 2
    assert "iterations must be >= 1" in capsys.readouterr().err
