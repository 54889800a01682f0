"""``selfiter evaluate``: says what it scored (checkpoint, data folder), has a legend,
builds the problem once, and takes ``--data-root`` only for a problem that reads a folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from selfiter import plugins
from selfiter.cli.main import main
from selfiter.hookspecs import hookimpl
from tests.core import toy_plugin
from tests.core.toy_plugin import ToyProblem, toy_config


class RootedToy(ToyProblem):
    """The toy problem as if it read a data folder, with a legend of its metrics."""

    metric_legend = {"err": "mean distance to the truth (units of theta)"}
    built = 0

    def __init__(self, data_root: Path, n: int = 64) -> None:
        super().__init__(n=n)
        self.data_root = data_root
        RootedToy.built += 1

    def load(self, split):
        data = super().load(split)
        data.source = str(self.data_root)
        return data


class _Rooted:
    @staticmethod
    @hookimpl
    def register_problems(register):
        register("rooted_toy", RootedToy)


@pytest.fixture
def rooted(tmp_path):
    plugins.register_plugin(_Rooted, name="rooted")
    (tmp_path / "data").mkdir()
    raw = toy_config(steps=10)
    raw["problem"] = {"name": "rooted_toy", "params": {"data_root": "data", "n": 64}}
    path = tmp_path / "rooted.yaml"
    path.write_text(yaml.safe_dump(raw))
    try:
        yield path
    finally:
        plugins.unregister_plugin("rooted")


@pytest.fixture
def toy_run(tmp_path):
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(yaml.safe_dump(toy_config(steps=10)))
    run = tmp_path / "run"
    assert main(["train", str(cfg), "-o", str(run), "--no-progress"]) == 0
    return cfg, run


def test_evaluate_names_the_checkpoint_and_has_a_legend(toy_run, capsys, monkeypatch):
    cfg, run = toy_run
    built = []
    original = toy_plugin.ToyProblem.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(toy_plugin.ToyProblem, "__init__", counting)
    capsys.readouterr()
    assert main(["evaluate", str(cfg), "--checkpoint", str(run), "--split", "test"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"checkpoint: {run} ({run / 'checkpoint.safetensors'})"
    assert lines[1] == "split test: 256 samples"  # the toy problem reads no folder
    assert lines[-1] == ("legend: rows: after each solver iteration (iter 0: the start, before "
                         "any step); columns: err, max_err (the problem's metrics, in its units)")
    assert len(built) == 1, "the problem was built more than once"


def test_a_problem_with_a_data_root_shows_it_and_its_legend(rooted, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(rooted), "-o", str(run), "--no-progress"]) == 0
    other = tmp_path / "other"
    other.mkdir()
    RootedToy.built = 0
    capsys.readouterr()
    assert main(["evaluate", str(rooted), "--checkpoint", str(run / "checkpoint.safetensors"),
                 "--split", "test", "--data-root", str(other)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"checkpoint: {run / 'checkpoint.safetensors'}"
    assert out[1] == f"split test: 64 samples from {other}"
    assert out[-1] == ("legend: rows: after each solver iteration (iter 0: the start, before any "
                       "step); err = mean distance to the truth (units of theta); max_err")
    # evaluate's own build, then the data_root check of the override's config: no api rebuilds
    assert RootedToy.built == 1


def test_data_root_is_refused_by_a_problem_without_a_data_folder(toy_run, capsys):
    cfg, run = toy_run
    capsys.readouterr()
    for cmd in (["evaluate", str(cfg), "--checkpoint", str(run)],
                ["export", str(cfg), "--checkpoint", str(run), "--format", "torchscript",
                 "-o", str(run / "x.pt")]):
        assert main([*cmd, "--data-root", "/data"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == ("selfiter: error: --data-root /data: problem 'toy' reads no data folder "
                       "(its factory has no data_root parameter)")
    assert not (run / "x.pt").exists()
