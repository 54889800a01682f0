"""One PluginManager; the bundled plugins load through the entry-point group like any other.

Component kinds are the core's (:data:`KIND_HOOKS`) plus those plugins add with
``register_kinds`` (each with its own hookspec), so that a problem family's
vocabulary (faces have detectors) stays in its plugin. Every ``register_*``
hook runs once per registered set of plugins: lookups read a cache that
:func:`register_plugin` and :func:`unregister_plugin` clear. A plugin that
registers a :class:`Lazy` reference has its module imported only when the
component is used, so that looking up one problem does not import another's
heavy dependencies.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import types
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import pluggy

from selfiter import hookspecs
from selfiter.errors import PluginError

ENTRY_POINT_GROUP = "selfiter"

#: the core's component kinds -> the hook that registers them (plugins add more: :func:`kinds`)
KIND_HOOKS: dict[str, str] = {
    "problem": "register_problems",
    "parameter_model": "register_parameter_models",
    "sampler": "register_samplers",
    "feature_extractor": "register_feature_extractors",
    "regressor": "register_regressors",
    "model": "register_models",
}

pm = pluggy.PluginManager("selfiter")
pm.add_hookspecs(hookspecs)
_loaded_entry_points = False
#: hook name -> what its implementations registered, until the set of plugins changes
_cache: dict[str, dict[str, Any]] = {}
#: hook names whose spec a plugin added through ``register_kinds``
_plugin_specs: set[str] = set()


@dataclass(frozen=True)
class Lazy:
    """``"package.module:attribute"``, imported on first use: register it in place of the
    object so that listing or looking up other components does not import the module."""

    target: str

    def load(self) -> Any:
        return _import_target(self.target)


@functools.lru_cache(maxsize=None)
def _import_target(target: str) -> Any:
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise PluginError(f"lazy component {target!r}: expected 'package.module:attribute'")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"lazy component {target!r} failed to import: {exc}") from exc
    return obj


@dataclass(frozen=True)
class Component:
    """A registered component: ``obj`` is a factory (or, for ``model``, a checkpoint path)."""

    kind: str
    name: str
    #: what the plugin registered: the object, or a :class:`Lazy` reference to it
    target: Any
    plugin: str

    @property
    def obj(self) -> Any:
        """The registered object (a lazy one is imported now)."""
        return self.target.load() if isinstance(self.target, Lazy) else self.target


@dataclass(frozen=True)
class Command:
    """A CLI sub-command contributed by a plugin."""

    name: str
    help: str
    configure: Callable[[Any], None]
    run: Callable[[Any], int]
    plugin: str


@dataclass(frozen=True)
class Kind:
    """A component kind a plugin adds: its name, the hook that registers it, and its spec."""

    name: str
    spec: Callable[..., Any]
    plugin: str


def _ensure_loaded() -> None:
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            module = ep.load()
        except Exception as exc:  # a broken third-party plugin must not take the CLI down silently
            raise PluginError(
                f"plugin {ep.name!r} (entry point {ep.value!r}) failed to import: {exc}"
            ) from exc
        pm.register(module, name=ep.name)
    _cache.clear()


def register_plugin(module: ModuleType | object, name: str | None = None) -> str:
    """Register a plugin in-process (a notebook, a test); returns its name."""
    _ensure_loaded()
    _cache.clear()
    return pm.register(module, name=name)


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with :func:`register_plugin`."""
    _cache.clear()
    pm.unregister(name=name)


def plugin_names() -> list[str]:
    """Every registered plugin, bundled and third-party."""
    _ensure_loaded()
    return sorted(pm.get_name(p) for p in pm.get_plugins())


def _collect(hook_name: str, make: Callable[..., Any]) -> dict[str, Any]:
    """What every plugin's ``hook_name`` registers, by name; the hooks run once per set
    of plugins (a copy of the cached result is returned)."""
    _ensure_loaded()
    if hook_name in _cache:
        return dict(_cache[hook_name])
    found: dict[str, Any] = {}
    hook = getattr(pm.hook, hook_name, None)
    for impl in hook.get_hookimpls() if hook is not None else []:
        plugin_name = impl.plugin_name

        def register(name: str, *args: Any, _plugin: str = plugin_name) -> None:
            if name in found:
                raise PluginError(
                    f"{hook_name}: name {name!r} registered by both plugin "
                    f"{found[name].plugin!r} and plugin {_plugin!r}"
                )
            found[name] = make(name, *args, plugin=_plugin)

        impl.function(register)
    _cache[hook_name] = found
    return dict(found)


def plugin_kinds() -> dict[str, Kind]:
    """The component kinds plugins add (``register_kinds``), their hookspecs added to the
    plugin manager the first time they are seen."""
    found = _collect("register_kinds", lambda name, spec, plugin: Kind(name, spec, plugin))
    for kind in found.values():
        if kind.name in KIND_HOOKS:
            raise PluginError(f"register_kinds: plugin {kind.plugin!r} adds kind {kind.name!r}, "
                              "which is one of the core's")
        hook = getattr(kind.spec, "__name__", "")
        if not hook.startswith("register_") or not hasattr(kind.spec, "selfiter_spec"):
            raise PluginError(f"register_kinds: plugin {kind.plugin!r}, kind {kind.name!r}: "
                              "expected a @hookspec function named register_*")
        if hook not in _plugin_specs and hook not in KIND_HOOKS.values():
            pm.add_hookspecs(types.SimpleNamespace(**{hook: kind.spec}))
            _plugin_specs.add(hook)
    return found


def kinds() -> dict[str, str]:
    """Every component kind, the core's and the plugins', -> the hook that registers it."""
    return {**KIND_HOOKS, **{k.name: k.spec.__name__ for k in plugin_kinds().values()}}


def components(kind: str) -> dict[str, Component]:
    """Every component of one kind (see :func:`kinds`), by name."""
    hooks = kinds()
    if kind not in hooks:
        raise PluginError(f"unknown component kind {kind!r}; expected one of {sorted(hooks)}")
    return _collect(hooks[kind], lambda name, obj, plugin: Component(kind, name, obj, plugin))


def commands() -> dict[str, Command]:
    """CLI sub-commands contributed by plugins, by name."""
    return _collect(
        "register_commands",
        lambda name, help, configure, run, plugin: Command(name, help, configure, run, plugin),
    )


def get(kind: str, name: str) -> Component:
    """One component by kind and name; the error lists the names that exist."""
    found = components(kind)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise PluginError(f"no {kind} named {name!r}; registered: {known}")
    return found[name]
