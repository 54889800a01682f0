"""Hook implementations of the curve_fit plugin: problem ``curve_fit``, features ``residual``.

The parameter model (``identity``), sampler (``gaussian_union``) and regressor
(``mlp``) are the core's generic components; see ``examples/curve_fit.yaml``."""

from __future__ import annotations

from curve_fit.features import ResidualFeatures
from curve_fit.problem import CurveFit
from selfiter.hookspecs import hookimpl


@hookimpl
def register_problems(register):
    register("curve_fit", CurveFit)


@hookimpl
def register_feature_extractors(register):
    register("residual", ResidualFeatures)
