"""Turn a validated :class:`~selfiter.config.Config` into live components."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from selfiter import plugins
from selfiter.config import COMPONENT_KINDS, Config
from selfiter.errors import ConfigError, SelfiterError
from selfiter.interfaces import FeatureExtractor, ParameterModel, Problem, Regressor, Sampler


@dataclass
class Components:
    """The four parts of a problem and the problem itself, built from one config."""

    problem: Problem
    parameter_model: ParameterModel
    sampler: Sampler
    extractor: FeatureExtractor
    config: Config

    def make_extractor(self) -> FeatureExtractor:
        """A fresh feature extractor (a learned one with freshly drawn weights)."""
        return _instantiate(self.config, "features")

    def make_regressor(self, feature_shape: tuple[int, ...]) -> Regressor:
        """A fresh regressor for features of one-sample shape ``feature_shape``."""
        return _instantiate(
            self.config, "regressor",
            feature_shape=tuple(feature_shape), theta_dim=self.parameter_model.theta_dim,
        )


def _instantiate(cfg: Config, section: str, **supplied: Any) -> Any:
    comp = getattr(cfg, section)
    factory = plugins.get(COMPONENT_KINDS[section], comp.name).obj
    try:
        return factory(**supplied, **comp.params)
    except SelfiterError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{cfg.source or '<config>'}: {section}: {comp.name!r} rejected its params: {exc}"
        ) from exc


def build_problem(cfg: Config) -> Problem:
    return _instantiate(cfg, "problem")


def build_components(cfg: Config, problem: Problem | None = None) -> Components:
    """Build problem (unless given), parameter model, sampler and feature extractor."""
    return Components(
        problem=problem if problem is not None else build_problem(cfg),
        parameter_model=_instantiate(cfg, "parameter_model"),
        sampler=_instantiate(cfg, "sampler"),
        extractor=_instantiate(cfg, "features"),
        config=cfg,
    )


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a CUDA name without CUDA is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: CUDA is not available on this machine (use cpu or auto)")
    return dev
