"""The core's own generic components, registered through the entry-point group like any plugin."""

from __future__ import annotations

from selfiter.hookspecs import hookimpl
from selfiter.parameter_models import IdentityModel
from selfiter.regressors import MLPRegressor
from selfiter.sampling import GaussianUnionSampler


@hookimpl
def register_parameter_models(register):
    register("identity", IdentityModel)


@hookimpl
def register_samplers(register):
    register("gaussian_union", GaussianUnionSampler)


@hookimpl
def register_regressors(register):
    register("mlp", MLPRegressor)
