"""One PluginManager; the bundled plugins load through the entry-point group like any other."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import pluggy

from selfiter import hookspecs
from selfiter.errors import PluginError

ENTRY_POINT_GROUP = "selfiter"

#: component kind -> the hook that registers it
KIND_HOOKS: dict[str, str] = {
    "problem": "register_problems",
    "parameter_model": "register_parameter_models",
    "sampler": "register_samplers",
    "feature_extractor": "register_feature_extractors",
    "regressor": "register_regressors",
    "detector": "register_detectors",
    "model": "register_models",
}

pm = pluggy.PluginManager("selfiter")
pm.add_hookspecs(hookspecs)
_loaded_entry_points = False


@dataclass(frozen=True)
class Component:
    """A registered component: ``obj`` is a factory (or, for ``model``, a checkpoint path)."""

    kind: str
    name: str
    obj: Any
    plugin: str


@dataclass(frozen=True)
class Command:
    """A CLI sub-command contributed by a plugin."""

    name: str
    help: str
    configure: Callable[[Any], None]
    run: Callable[[Any], int]
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


def register_plugin(module: ModuleType | object, name: str | None = None) -> str:
    """Register a plugin in-process (a notebook, a test); returns its name."""
    _ensure_loaded()
    return pm.register(module, name=name)


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with :func:`register_plugin`."""
    pm.unregister(name=name)


def plugin_names() -> list[str]:
    """Every registered plugin, bundled and third-party."""
    _ensure_loaded()
    return sorted(pm.get_name(p) for p in pm.get_plugins())


def _collect(hook_name: str, make: Callable[..., Any]) -> dict[str, Any]:
    _ensure_loaded()
    found: dict[str, Any] = {}
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        plugin_name = impl.plugin_name

        def register(name: str, *args: Any, _plugin: str = plugin_name) -> None:
            if name in found:
                raise PluginError(
                    f"{hook_name}: name {name!r} registered by both plugin "
                    f"{found[name].plugin!r} and plugin {_plugin!r}"
                )
            found[name] = make(name, *args, plugin=_plugin)

        impl.function(register)
    return found


def components(kind: str) -> dict[str, Component]:
    """Every component of one kind (see :data:`KIND_HOOKS`), by name."""
    if kind not in KIND_HOOKS:
        raise PluginError(f"unknown component kind {kind!r}; expected one of {sorted(KIND_HOOKS)}")
    return _collect(KIND_HOOKS[kind], lambda name, obj, plugin: Component(kind, name, obj, plugin))


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
