"""The Python API: load a trained solver by name or path and apply it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from selfiter.build import build_components, build_problem, resolve_device
from selfiter.checkpoint import (CheckpointData, check_same_model, load_checkpoint, load_weights,
                                 resolve_checkpoint)
from selfiter.config import Config, config_from_dict
from selfiter.errors import ConfigError
from selfiter.runtime import RUNTIMES, OnnxRuntimeSolver
from selfiter.evaluation import initial_theta, solve_batched
from selfiter.interfaces import FeatureExtractor, ParameterModel, Problem, Regressor, View
from selfiter.solver import LearnedModel, LearnedSolver, SolveResult, make_solver
from selfiter.solver.views import solve_averaged


@dataclass
class TrainedSolver:
    """A trained solver with the parts it was trained with, ready to apply."""

    config: Config
    problem: Problem
    parameter_model: ParameterModel
    #: every learned weight: the extractor (when it has weights) and the regressor(s)
    model: LearnedModel
    solver: LearnedSolver
    device: torch.device
    #: where the weights came from
    source: str
    #: what :meth:`solve` runs on: ``torch`` (the solver loop), ``onnxruntime`` (the
    #: unrolled solver as one cached ONNX graph; CPU only, see :mod:`selfiter.runtime`) or
    #: ``onnxruntime-int8`` (that graph with int8 matrix products)
    runtime: str = "torch"
    _onnx: Any = field(default=None, init=False, repr=False)
    _theta_mean: torch.Tensor | None = field(default=None, init=False, repr=False)

    @property
    def extractor(self) -> FeatureExtractor:
        return self.model.extractor

    @property
    def regressors(self) -> list[Regressor]:
        return list(self.model.regressors)

    @property
    def max_iterations(self) -> int | None:
        """A cascade runs at most one iteration per stage; SIR has no limit."""
        # from the model, not the config: a config passed to load() may be another run's
        return len(self.model.regressors) if self.model.mode == "cascade" else None

    def initial_theta(self, n: int) -> torch.Tensor:
        """The start of every solve: theta of the mean state, ``(n, D)`` on the solver's device."""
        if self._theta_mean is None:
            # the parameter model is fixed once loaded; a one-face fit should not pay for
            # mapping the mean state to theta again at every call
            self._theta_mean = initial_theta(self.parameter_model, 1, self.device)
        return self._theta_mean.expand(n, -1).clone()

    def predict(self, raw: Any, **options: Any) -> Any:
        """The problem's own prediction on raw input (for faces: photos -> landmarks);
        see the problem's ``predict``."""
        return self.problem.predict(self, raw, **options)

    def solve(self, inputs: torch.Tensor, theta0: torch.Tensor | None = None,
              iterations: int | None = None, tol: float | None = None,
              progress: bool = False, tta: bool | None = None) -> SolveResult:
        """Solve ``inputs: (N, ...)`` from ``theta0: (N, D)`` (default: the mean state).
        ``tta`` (default: ``solver.tta``) also solves the problem's test views of the
        inputs and returns the mean (see :func:`selfiter.solver.views.solve_averaged`)."""
        s = self.config.solver
        k, tol = (s.iterations if iterations is None else iterations), (s.tol if tol is None else tol)
        theta0 = self.initial_theta(inputs.shape[0]) if theta0 is None else theta0.to(self.device)

        def run(x: torch.Tensor, start: torch.Tensor) -> SolveResult:
            return solve_batched(self._runtime_solver(), self.parameter_model, x, k, tol,
                                 s.batch_size, theta0=start, amp=self.config.train.amp,
                                 progress=progress)

        views = self.test_views() if (s.tta if tta is None else tta) else ()
        return solve_averaged(run, views, inputs.to(self.device), theta0)

    def test_views(self) -> tuple[View, ...]:
        """The problem's test views (``solver.tta``); a problem without any is a
        :class:`~selfiter.errors.ConfigError`."""
        views = tuple(self.problem.test_views())
        if not views:
            raise ConfigError(f"solver.tta: problem {type(self.problem).__name__} has no test "
                              "views to average over; set solver.tta to false")
        return views


    def _runtime_solver(self) -> Any:
        if self.runtime == "torch":
            return self.solver
        if self._onnx is None:
            self._onnx = OnnxRuntimeSolver(self, int8=self.runtime == "onnxruntime-int8")
        return self._onnx


def from_checkpoint_data(ckpt: CheckpointData, device: str | torch.device = "cpu",
                         source: str = "<memory>", config: Config | None = None,
                         problem: Problem | None = None, runtime: str = "torch") -> TrainedSolver:
    """Rebuild a solver from loaded checkpoint data. ``config`` (default: the
    checkpoint's own) supplies the problem and solver settings; the parts that
    must match the weights always come from the checkpoint, and a config that
    asks for another problem or other components is refused in one line.
    ``problem``, when given (built by the caller from ``config``), is used
    instead of building the problem again. ``runtime``: ``torch``, ``onnxruntime``
    or ``onnxruntime-int8`` (see :class:`TrainedSolver`)."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    own = config_from_dict(yaml.safe_load(ckpt.config_yaml), source=f"{source} (embedded config)")
    cfg = config if config is not None else own
    if config is not None:
        check_same_model(ckpt, config.to_yaml(), source, f"the config ({config.source or '<config>'})")
    dev = resolve_device(str(device))
    parts = build_components(own, problem)
    parts.parameter_model.load_state_dict(ckpt.parameter_model)
    regs = [parts.make_regressor(ckpt.feature_shape) for _ in ckpt.regressors]
    model = LearnedModel(parts.extractor, regs, own.train.mode)
    load_weights(model, ckpt, source)
    model.to(dev).eval()
    if problem is None:
        problem = parts.problem if config is None else build_problem(cfg)
    return TrainedSolver(
        config=cfg, problem=problem, parameter_model=parts.parameter_model, model=model,
        solver=make_solver(model), device=dev, source=source, runtime=runtime,
    )


def load(name_or_path: str | Path, device: str | torch.device = "cpu",
         config: Config | None = None, problem: Problem | None = None,
         runtime: str = "torch") -> TrainedSolver:
    """Load a pretrained model by name (``"face300w"``) or a checkpoint file/run folder
    (``problem``, ``runtime``: see :func:`from_checkpoint_data`)."""
    path = resolve_checkpoint(name_or_path)
    return from_checkpoint_data(load_checkpoint(path), device, str(path), config, problem, runtime)
