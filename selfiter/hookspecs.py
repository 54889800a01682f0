"""The hooks a selfiter plugin implements: the plugin author's manual.

A plugin is a module with functions decorated by :data:`hookimpl` whose names
match the specs below. It is found through the ``selfiter`` entry-point group
(``[project.entry-points.selfiter] my_plugin = "my_package.plugin"``) or
registered in-process with :func:`selfiter.plugins.register_plugin`.

Every hook receives a ``register`` callback and calls it once per component.
Names are global across plugins: registering a name twice is an error that
names both plugins. A component may be registered as
``selfiter.plugins.Lazy("package.module:Name")``: its module is imported only
when the component is used, so that a plugin's heavy dependencies (OpenCV,
matplotlib) are not imported for another plugin's config. The hooks run once;
the registry caches what they registered.
"""

from __future__ import annotations

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("selfiter")
hookimpl = HookimplMarker("selfiter")


@hookspec
def register_problems(register):
    """Register problems: ``register(name, factory)``.

    ``factory(**params) -> selfiter.interfaces.Problem``; ``params`` come from the
    config's ``problem.params`` and are checked against the factory's signature."""


@hookspec
def register_parameter_models(register):
    """Register parameter models: ``register(name, factory)``.

    ``factory(**params) -> selfiter.interfaces.ParameterModel``."""


@hookspec
def register_samplers(register):
    """Register training-state samplers: ``register(name, factory)``.

    ``factory(**params) -> selfiter.interfaces.Sampler``."""


@hookspec
def register_feature_extractors(register):
    """Register feature extractors: ``register(name, factory)``.

    ``factory(**params) -> selfiter.interfaces.FeatureExtractor``. An extractor may
    encode each input once (``encode``) and read that context at every iteration
    (``features``); one with learned weights subclasses
    ``selfiter.interfaces.LearnedFeatureExtractor`` and is trained, saved and
    exported with the regressor."""


@hookspec
def register_regressors(register):
    """Register regressors: ``register(name, factory)``.

    ``factory(feature_shape=..., theta_dim=..., **params) -> selfiter.interfaces.Regressor``:
    the core passes the feature shape of one sample and D."""


@hookspec
def register_models(register):
    """Register pretrained solvers shipped with the plugin: ``register(name, path)``.

    ``path`` is a selfiter checkpoint (``.safetensors`` holding the weights, the
    fitted parameter model and the resolved config); ``selfiter.load(name)``
    and ``checkpoint: name`` in a config find it by name."""


@hookspec
def register_commands(register):
    """Add sub-commands to the ``selfiter`` CLI: ``register(name, help, configure, run)``.

    ``configure(parser)`` adds arguments to an ``argparse`` parser (its epilog
    is the place to say what the command's exit statuses mean);
    ``run(args) -> int`` does the work and returns the exit status: 0 all fine,
    1 some inputs failed or had no result (each named in one line on stderr).
    Raise :class:`selfiter.errors.SelfiterError` for user errors: the CLI
    prints it as one line and exits 2."""


@hookspec
def register_kinds(register):
    """Add component kinds of the plugin's own: ``register(kind, spec)``.

    ``spec`` is a function decorated with :data:`hookspec` whose name starts
    with ``register_`` (e.g. ``register_detectors(register)``); selfiter adds it
    to the plugin manager, and the kind's components are then registered by
    implementing that hook and listed and looked up like the core's kinds
    (``selfiter.plugins.get(kind, name)``, ``selfiter plugins``). The core's
    kinds (problem, sampler, ...) cannot be redefined."""
