"""A tiny in-process plugin for core tests: recover theta* from noisy direct observations.

inputs: (N, D) = theta* + noise; features: inputs - theta (the residual). The
exact regressor is the identity on the features, so the learned solver should
approach it quickly."""

from __future__ import annotations

import torch

from selfiter.hookspecs import hookimpl
from torch import nn

from selfiter.interfaces import (FeatureExtractor, LearnedFeatureExtractor, Problem, ProblemData,
                                 View)
from selfiter.regressors import MLPRegressor


class ToyProblem(Problem):
    splits = ("train", "test")

    def __init__(self, n: int = 512, dim: int = 2, noise: float = 0.0, seed: int = 0) -> None:
        self.n, self.dim, self.noise, self.seed = n, dim, noise, seed

    def load(self, split: str) -> ProblemData:
        g = torch.Generator().manual_seed(self.seed + (0 if split == "train" else 1))
        theta = torch.randn(self.n, self.dim, generator=g) * 2.0 + 1.0
        inputs = theta + self.noise * torch.randn(self.n, self.dim, generator=g)
        return ProblemData(inputs, theta, {"ids": list(range(self.n))})

    def metrics(self, theta: torch.Tensor, data: ProblemData) -> dict[str, float]:
        err = (theta - data.theta_gt.to(theta)).norm(dim=1)
        return {"err": float(err.mean()), "max_err": float(err.max())}


class Negate(View):
    """The toy problem's symmetry: observations and states negated (its own inverse)."""

    name = "negate"

    def inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        return -inputs

    def theta(self, theta: torch.Tensor) -> torch.Tensor:
        return -theta

    def theta_back(self, theta: torch.Tensor) -> torch.Tensor:
        return -theta


class SymmetricToy(ToyProblem):
    """The toy problem with its one test view, :class:`Negate`."""

    def test_views(self):
        return (Negate(),)


class Residual(FeatureExtractor):
    def features(self, inputs: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return inputs - theta

    def feature_shape(self, input_shape, theta_dim):
        return (theta_dim,)


class LearnedResidual(LearnedFeatureExtractor):
    """A learned encoding ``context = W inputs + b`` (near the identity), then the
    residual ``context - theta``: the toy problem with weights in its extractor.
    ``encodes`` counts the inputs encoded, so tests can see the cache at work."""

    def __init__(self, dim: int = 2) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        with torch.no_grad():
            self.linear.weight.mul_(0.1).add_(torch.eye(dim))
            self.linear.bias.mul_(0.1)
        self.encodes = 0

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        self.encodes += inputs.shape[0]
        return self.linear(inputs)

    def features(self, context: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return context - theta

    def feature_shape(self, input_shape, theta_dim):
        return (theta_dim,)


@hookimpl
def register_problems(register):
    register("toy", ToyProblem)
    register("toy_symmetric", SymmetricToy)


@hookimpl
def register_feature_extractors(register):
    register("toy_residual", Residual)
    register("toy_learned_residual", LearnedResidual)


class SelfSupervisedMLP(MLPRegressor):
    """The MLP whose auxiliary prediction is its increment again: with weight ``w`` the
    trainer's loss is ``(1 + w)`` times the plain one, which a test can check exactly."""

    def forward_train(self, features):
        delta = self(features)
        return delta, lambda target: (delta, target)


@hookimpl
def register_regressors(register):
    register("toy_mlp_auxiliary", SelfSupervisedMLP)


def toy_config(**train) -> dict:
    """A plain-data config for the toy problem (train keys overridable)."""
    return {
        "problem": {"name": "toy", "params": {"n": 256}},
        "parameter_model": {"name": "identity", "params": {"names": ["x", "y"]}},
        "sampler": {"name": "gaussian_union", "params": {"sigma": 0.5, "sigma_mean": 1.5}},
        "features": {"name": "toy_residual"},
        "regressor": {"name": "mlp", "params": {"hidden": [32]}},
        "train": {"steps": 200, "batch_size": 64, "optimizer": "adam", "lr": 0.01,
                  "weight_decay": 0.0, "log_every": 50, "checkpoint_every": 50, **train},
        "solver": {"iterations": 3},
        "evaluate": {"split": "test"},
    }
