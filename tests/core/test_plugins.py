"""The plugin system: entry points, in-process registration, and a meta-test of the hookspecs."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from selfiter import hookspecs, plugins
from selfiter.errors import PluginError
from selfiter.hookspecs import hookimpl

REPO = Path(__file__).resolve().parents[2]
HOOKS = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("register_")]


def test_bundled_plugins_load_through_entry_points():
    names = plugins.plugin_names()
    for bundled in ("core", "curve_fit", "face_landmarks"):
        assert bundled in names


def test_every_hookspec_has_a_kind_or_a_command_and_is_documented():
    kinds = set(plugins.KIND_HOOKS.values()) | {"register_commands"}
    assert set(HOOKS) == kinds
    docs = (REPO / "docs" / "plugins.md").read_text()
    for hook in HOOKS:
        assert getattr(hookspecs, hook).__doc__.strip(), hook
        assert f"`{hook}`" in docs, f"{hook} is not documented in docs/plugins.md"


def test_every_hookspec_is_implemented_by_a_test_plugin():
    tests = "\n".join(p.read_text() for p in (REPO / "tests").rglob("*.py"))
    for hook in HOOKS:
        assert re.search(rf"def {hook}\(register\)", tests), f"no test plugin implements {hook}"


class _Dupe:
    @staticmethod
    @hookimpl
    def register_samplers(register):
        register("gaussian_union", object)


class _Extra:
    @staticmethod
    @hookimpl
    def register_samplers(register):
        register("my_sampler", object)

    @staticmethod
    @hookimpl
    def register_parameter_models(register):
        register("my_model_kind", object)

    @staticmethod
    @hookimpl
    def register_regressors(register):
        register("my_regressor", object)

    @staticmethod
    @hookimpl
    def register_detectors(register):
        register("my_detector", object)

    @staticmethod
    @hookimpl
    def register_models(register):
        register("my_model", "/nowhere.safetensors")

    @staticmethod
    @hookimpl
    def register_commands(register):
        register("hello", "say hello", lambda p: p.add_argument("--name", default="you"),
                 lambda args: print(f"hello {args.name}") or 0)


def test_in_process_plugin_registers_every_kind(capsys):
    plugins.register_plugin(_Extra, name="extra")
    try:
        assert plugins.get("sampler", "my_sampler").plugin == "extra"
        assert plugins.get("detector", "my_detector").obj is object
        assert plugins.get("parameter_model", "my_model_kind").plugin == "extra"
        assert plugins.get("regressor", "my_regressor").plugin == "extra"
        assert plugins.components("model")["my_model"].obj == "/nowhere.safetensors"
        from selfiter.cli.main import main

        assert main(["hello", "--name", "SIR"]) == 0
        assert "hello SIR" in capsys.readouterr().out
    finally:
        plugins.unregister_plugin("extra")
    with pytest.raises(PluginError, match="no sampler named 'my_sampler'"):
        plugins.get("sampler", "my_sampler")


def test_a_name_taken_twice_names_both_plugins():
    plugins.register_plugin(_Dupe, name="dupe")
    try:
        with pytest.raises(PluginError, match="'gaussian_union' registered by both plugin 'core' and plugin 'dupe'"):
            plugins.components("sampler")
    finally:
        plugins.unregister_plugin("dupe")


def test_unknown_kind():
    with pytest.raises(PluginError, match="unknown component kind 'widget'"):
        plugins.components("widget")
