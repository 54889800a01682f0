"""The CLI end to end on the toy problem; errors are one line with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from selfiter.cli.main import main
from tests.core.toy_plugin import toy_config


def write_config(tmp_path, **train):
    p = tmp_path / "toy.yaml"
    p.write_text(yaml.safe_dump(toy_config(**train)))
    return p


def test_train_evaluate_describe(tmp_path, capsys):
    cfg = write_config(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(cfg), "-o", str(run), "--no-progress", "--set", "train.steps=100"]) == 0
    assert main(["evaluate", str(cfg), "--checkpoint", str(run), "--split", "test",
                 "--json", str(tmp_path / "out.json")]) == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["split"] == "test" and out["n"] == 256
    assert [r["iteration"] for r in out["per_iteration"]] == [0, 1, 2, 3]
    assert out["err"] < out["per_iteration"][0]["err"]
    assert main(["describe", str(cfg)]) == 0
    text = capsys.readouterr().out
    # mlp 2 -> 32 -> 2: (2*32+32) + (32*2+2)
    assert "regressor params 162" in text
    assert "split test: 256 samples" in text


def test_a_cascade_is_evaluated_for_at_most_its_stages_whatever_the_config(tmp_path, capsys):
    cascade = write_config(tmp_path, mode="cascade", stages=2, steps=5)
    run = tmp_path / "cr"
    assert main(["train", str(cascade), "-o", str(run), "--no-progress"]) == 0
    sir = tmp_path / "sir.yaml"  # another run's config, SIR with 3 iterations
    sir.write_text(yaml.safe_dump(toy_config()))
    assert main(["evaluate", str(sir), "--checkpoint", str(run), "--split", "test"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "selfiter: error: solver.iterations=3: a cascade of 2 stages runs at most 2"
    assert main(["evaluate", str(sir), "--checkpoint", str(run), "--split", "test",
                 "--iterations", "2"]) == 0


def test_config_errors_exit_2_with_one_line(tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert main(["train", str(cfg), "--set", "train.lr=fast"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"selfiter: error: {cfg}: train.lr: expected a number, got 'fast'"
    assert main(["evaluate", str(cfg)]) == 2
    assert "evaluate.checkpoint is not set and no --checkpoint given" in capsys.readouterr().err
    assert main(["evaluate", str(cfg), "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "neither a checkpoint file nor a pretrained model name" in capsys.readouterr().err


def test_subprocess_error_has_no_traceback_unless_debug(tmp_path):
    cfg = write_config(tmp_path)  # names the in-process 'toy' problem, unknown to a fresh process
    run = [sys.executable, "-m", "selfiter", "train", str(cfg)]
    res = subprocess.run(run, capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0
    assert "problem.name: no problem named 'toy'" in res.stderr
    assert "Traceback" not in res.stderr
    res = subprocess.run(run[:3] + ["--debug"] + run[3:], capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" in res.stderr


def test_help_for_every_command():
    for cmd in ("train", "evaluate", "describe", "plugins"):
        res = subprocess.run([sys.executable, "-m", "selfiter", cmd, "--help"],
                             capture_output=True, text=True)
        assert res.returncode == 0 and "usage: selfiter" in res.stdout
