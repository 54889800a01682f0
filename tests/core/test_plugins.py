"""The plugin system: entry points, in-process registration, and a meta-test of the hookspecs."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from selfiter import hookspecs, plugins
from selfiter.errors import PluginError
from selfiter.hookspecs import hookimpl, hookspec

REPO = Path(__file__).resolve().parents[2]
HOOKS = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("register_")]


def test_bundled_plugins_load_through_entry_points():
    names = plugins.plugin_names()
    for bundled in ("core", "curve_fit", "face_landmarks"):
        assert bundled in names


def test_every_hookspec_has_a_kind_or_a_command_and_is_documented():
    kinds = set(plugins.KIND_HOOKS.values()) | {"register_commands", "register_kinds"}
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


@hookspec
def register_widgets(register):
    """A test plugin's own kind: ``register(name, factory)``."""


class _Extra:
    @staticmethod
    @hookimpl
    def register_kinds(register):
        register("widget", register_widgets)

    @staticmethod
    @hookimpl
    def register_widgets(register):
        register("my_widget", object)

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
        assert plugins.get("widget", "my_widget").obj is object  # a kind the plugin added
        assert plugins.kinds()["widget"] == "register_widgets"
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
    with pytest.raises(PluginError, match="unknown component kind 'widget'"):
        plugins.get("widget", "my_widget")


def test_a_name_taken_twice_names_both_plugins():
    plugins.register_plugin(_Dupe, name="dupe")
    try:
        with pytest.raises(PluginError, match="'gaussian_union' registered by both plugin 'core' and plugin 'dupe'"):
            plugins.components("sampler")
    finally:
        plugins.unregister_plugin("dupe")


def test_unknown_kind():
    with pytest.raises(PluginError, match="unknown component kind 'gadget'"):
        plugins.components("gadget")


def test_the_core_has_no_face_vocabulary_and_the_face_plugin_adds_its_detector_kind():
    import selfiter.hookspecs

    assert "detector" not in plugins.KIND_HOOKS
    assert not hasattr(selfiter.hookspecs, "register_detectors")
    kind = plugins.plugin_kinds()["detector"]
    assert kind.plugin == "face_landmarks" and kind.spec.__name__ == "register_detectors"
    haar = plugins.get("detector", "haar")
    assert haar.plugin == "face_landmarks" and isinstance(haar.target, plugins.Lazy)


class _Counting:
    calls = 0

    @staticmethod
    @hookimpl
    def register_samplers(register):
        _Counting.calls += 1
        register("counted", object)


def test_hooks_run_once_until_the_plugins_change():
    plugins.register_plugin(_Counting, name="counting")
    try:
        _Counting.calls = 0
        for _ in range(3):
            assert plugins.get("sampler", "counted").plugin == "counting"
        assert _Counting.calls == 1
        plugins.register_plugin(_Dupe, name="dupe")  # a new plugin: the hooks run again
        with pytest.raises(PluginError, match="registered by both"):
            plugins.components("sampler")
        assert _Counting.calls == 2
    finally:
        plugins.unregister_plugin("dupe")
        plugins.unregister_plugin("counting")
    assert "counted" not in plugins.components("sampler")


class _LazyOnes:
    @staticmethod
    @hookimpl
    def register_samplers(register):
        register("lazy_sqrt", plugins.Lazy("math:sqrt"))
        register("lazy_missing", plugins.Lazy("no_such_module_xyz:Thing"))


def test_a_lazy_component_is_imported_when_used():
    import math

    plugins.register_plugin(_LazyOnes, name="lazy")
    try:
        found = plugins.components("sampler")  # listing imports nothing
        assert found["lazy_sqrt"].obj is math.sqrt
        with pytest.raises(PluginError, match="'no_such_module_xyz:Thing' failed to import"):
            found["lazy_missing"].obj  # noqa: B018
    finally:
        plugins.unregister_plugin("lazy")


class _Clash:
    @staticmethod
    @hookimpl
    def register_kinds(register):
        register("sampler", register_widgets)


def test_a_plugin_cannot_redefine_a_core_kind():
    plugins.register_plugin(_Clash, name="clash")
    try:
        with pytest.raises(PluginError, match="adds kind 'sampler', which is one of the core's"):
            plugins.kinds()
    finally:
        plugins.unregister_plugin("clash")


def _imported_after(code: str) -> set[str]:
    """The heavy modules a fresh process has imported after running ``code``."""
    probe = code + "\nimport sys\nprint(sorted(m for m in ('cv2', 'matplotlib') if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return set(eval(res.stdout.strip().splitlines()[-1]))


def test_the_cli_parser_and_a_detector_lookup_import_no_opencv():
    code = ("from selfiter.cli.main import build_parser\n"
            "from selfiter import plugins\n"
            "build_parser(plugins.commands()).parse_args(['landmarks', 'x.jpg'])\n"
            "plugins.get('detector', 'haar')\n")
    assert _imported_after(code) == set()


def test_a_curve_fit_config_imports_no_opencv_or_matplotlib(tmp_path):
    from selfiter.config import load_config
    from selfiter.training import train

    config = REPO / "examples" / "curve_fit.yaml"
    ckpt = train(load_config(config, ["train.steps=1", "train.val_split=null", "train.device=cpu",
                                      "problem.params.n_train=64", "problem.params.n_test=8"]),
                 tmp_path / "run", progress=False)
    code = ("from selfiter.cli.main import main\n"
            f"assert main(['describe', {str(config)!r}, '--input-shape', '64']) == 0\n"
            f"assert main(['evaluate', {str(config)!r}, '--checkpoint', {str(ckpt)!r}, "
            "'--set', 'problem.params.n_test=8']) == 0\n")
    assert _imported_after(code) == set()
