"""A complete selfiter plugin: fit circles to noisy points (the tutorial in docs/plugins.md).

theta = (cx, cy, r); inputs are M noisy points on an arc of each circle,
``(N, M, 2)``; the features are the points seen from the current circle (their
offset from its centre and their distance from its rim), which the regressor
turns into a step towards the truth.
"""

from __future__ import annotations

import math

import torch

from selfiter.hookspecs import hookimpl
from selfiter.interfaces import FeatureExtractor, Problem, ProblemData


class Circles(Problem):
    """Random circles, each observed as ``points`` noisy samples of a random arc."""

    splits = ("train", "test")

    def __init__(self, n: int = 2000, points: int = 16, noise: float = 0.01, seed: int = 0) -> None:
        self.n, self.points, self.noise, self.seed = n, points, noise, seed

    def load(self, split: str) -> ProblemData:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; expected one of {self.splits}")
        g = torch.Generator().manual_seed(self.seed + self.splits.index(split))
        centre = torch.rand(self.n, 2, generator=g) * 4 - 2  # (N, 2)
        radius = torch.rand(self.n, 1, generator=g) * 1.5 + 0.5  # (N, 1)
        start = torch.rand(self.n, 1, generator=g) * 2 * math.pi
        angle = start + torch.linspace(0, 1.5 * math.pi, self.points)  # (N, M): a 3/4 arc
        pts = centre[:, None] + radius[:, :, None] * torch.stack([angle.cos(), angle.sin()], -1)
        pts = pts + self.noise * torch.randn(pts.shape, generator=g)  # (N, M, 2)
        return ProblemData(pts, torch.cat([centre, radius], 1))

    def metrics(self, theta: torch.Tensor, data: ProblemData) -> dict[str, float]:
        err = (theta - data.theta_gt).abs().amax(1)  # (N,) worst of cx, cy, r
        return {"max_abs_err": float(err.mean()), "solved_pct": float((err < 0.05).float().mean() * 100)}


class RelativePoints(FeatureExtractor):
    """``p - c`` and ``|p - c| - r`` for every point: ``(B, M, 2)`` -> ``(B, M, 3)``."""

    def features(self, inputs: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        offset = inputs - theta[:, None, :2]  # (B, M, 2)
        rim = offset.norm(dim=-1, keepdim=True) - theta[:, None, 2:]  # (B, M, 1)
        return torch.cat([offset, rim], -1)

    def feature_shape(self, input_shape, theta_dim):
        return (input_shape[0], 3)


@hookimpl
def register_problems(register):
    register("circles", Circles)


@hookimpl
def register_feature_extractors(register):
    register("relative_points", RelativePoints)


CONFIG = {
    "problem": {"name": "circles"},
    "parameter_model": {"name": "identity", "params": {"names": ["cx", "cy", "r"]}},
    "sampler": {"name": "gaussian_union", "params": {"sigma": 0.3, "sigma_mean": 1.0}},
    "features": {"name": "relative_points"},
    "regressor": {"name": "mlp", "params": {"hidden": [64, 64]}},
    "train": {"steps": 1500, "batch_size": 128, "optimizer": "adamw", "lr": 0.003,
              "schedule": "cosine", "weight_decay": 0.0},
    "solver": {"iterations": 5},
    "evaluate": {"split": "test"},
}
