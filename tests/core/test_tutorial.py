"""The plugin tutorial's code (docs/tutorial/circle_plugin.py) runs and learns."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import selfiter
from selfiter import plugins
from selfiter.config import config_from_dict
from selfiter.training import train

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial" / "circle_plugin.py"


def test_the_tutorial_plugin_trains_and_solves(tmp_path):
    spec = importlib.util.spec_from_file_location("circle_plugin", TUTORIAL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugins.register_plugin(module, name="circles")
    try:
        raw = dict(module.CONFIG, train={**module.CONFIG["train"], "steps": 600})
        ckpt = train(config_from_dict(raw), tmp_path / "run", progress=False)
        model = selfiter.load(ckpt)
        test = model.problem.load("test")
        res = model.solve(test.inputs)
        start = model.problem.metrics(res.trajectory[0], test)
        final = model.problem.metrics(res.theta, test)
        assert final["max_abs_err"] < 0.25 * start["max_abs_err"]
        assert final["solved_pct"] > 80.0 > start["solved_pct"]
    finally:
        plugins.unregister_plugin("circles")
