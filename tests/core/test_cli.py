"""The CLI end to end on the toy problem; errors are one line with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
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
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(toy_config(lr="fast")))
    assert main(["train", str(bad)]) == 2  # in the file: the file is named
    err = capsys.readouterr().err
    assert err.strip() == f"selfiter: error: {bad}: train.lr: expected a number, got 'fast'"
    assert main(["evaluate", str(cfg)]) == 2
    assert "evaluate.checkpoint is not set and no --checkpoint given" in capsys.readouterr().err
    assert main(["evaluate", str(cfg), "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "neither a checkpoint file nor a pretrained model name" in capsys.readouterr().err


@pytest.mark.parametrize("item, message", [
    ("train.lr=fast", "--set train.lr=fast: train.lr: expected a number, got 'fast'"),
    ("train.steps=-3", "--set train.steps=-3: train.steps: expected an integer >= 0, got -3"),
    ("train.speed=3", "--set train.speed=3: train.speed: unknown key; expected one of "),
    ("problem.params.n=many", "--set problem.params.n=many: problem.params.n: expected an integer"),
    ("problem.params.m=1", "--set problem.params.m=1: problem.params.m: unknown parameter of "
                           "problem 'toy'"),
    ("sampler.name=nope", "--set sampler.name=nope: sampler.name: no sampler named 'nope'"),
    ("train.lr", "--set 'train.lr': expected KEY=VALUE"),
])
def test_a_bad_override_is_reported_as_the_override_not_as_the_file(tmp_path, capsys, item,
                                                                     message):
    cfg = write_config(tmp_path)
    assert main(["describe", str(cfg), "--set", item]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"selfiter: error: {message}"), err
    assert str(cfg) not in err and len(err.splitlines()) == 1


def test_debug_is_accepted_before_or_after_the_command(tmp_path, capsys):
    cfg = write_config(tmp_path)
    from selfiter.cli.main import build_parser
    from selfiter import plugins

    parser = build_parser(plugins.commands())
    assert parser.parse_args(["--debug", "describe", str(cfg)]).debug is True
    assert parser.parse_args(["describe", str(cfg), "--debug"]).debug is True
    assert parser.parse_args(["describe", str(cfg)]).debug is False
    assert main(["describe", str(cfg), "--debug"]) == 0
    assert main(["describe", str(cfg), "--set", "train.lr=fast", "--debug"]) == 2
    assert "usage" not in capsys.readouterr().err


def test_an_internal_error_exits_3_and_says_where_debug_goes(monkeypatch, tmp_path, capsys):
    from selfiter.cli import describe

    def boom(args):
        raise RuntimeError("boom")

    cfg = write_config(tmp_path)
    monkeypatch.setattr(describe, "run", boom)
    assert main(["describe", str(cfg)]) == 3
    err = capsys.readouterr().err.strip()
    assert err == ("selfiter: internal error: RuntimeError: boom (rerun with --debug, before or "
                   "after the command, for the traceback)")
    with pytest.raises(RuntimeError, match="boom"):
        main(["describe", str(cfg), "--debug"])


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
    res = subprocess.run(run + ["--debug"], capture_output=True, text=True)  # after the command
    assert res.returncode == 2 and "Traceback" in res.stderr


def test_help_for_every_command():
    for cmd in ("train", "evaluate", "describe", "plugins"):
        res = subprocess.run([sys.executable, "-m", "selfiter", cmd, "--help"],
                             capture_output=True, text=True)
        assert res.returncode == 0 and "usage: selfiter" in res.stdout


def test_resume_takes_the_saved_config_and_only_safe_overrides(tmp_path, capsys):
    cfg = write_config(tmp_path)
    run = tmp_path / "run"
    # started with overrides that the config file lacks
    assert main(["train", str(cfg), "-o", str(run), "--no-progress",
                 "--set", "train.steps=20", "problem.params.n=64", "train.lr=0.02"]) == 0
    capsys.readouterr()
    # the README's line: the config and --resume, with or without the original overrides
    assert main(["train", str(cfg), "-o", str(run), "--no-progress", "--resume",
                 "--set", "train.steps=30"]) == 0
    out = capsys.readouterr().out
    assert f"resuming {run} with its saved config {run / 'config.yaml'}" in out
    assert "trained: 30 steps" in out
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["problem"]["params"]["n"] == 64 and saved["train"]["lr"] == 0.02
    assert main(["train", str(cfg), "-o", str(run), "--no-progress", "--resume", "--set",
                 "train.steps=40", "problem.params.n=64", "train.lr=0.02"]) == 0
    assert "trained: 40 steps" in capsys.readouterr().out
    # anything else that differs from the saved run is refused, naming the key
    assert main(["train", str(cfg), "-o", str(run), "--no-progress", "--resume",
                 "--set", "train.steps=50", "problem.params.n=128"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"selfiter: error: {run}: cannot resume: problem.params.n was 64 in "
                          "the saved run, now 128 (a resumed run keeps its saved config; it may "
                          "change only train.checkpoint_every, ")
    assert len(err.splitlines()) == 1
    assert main(["train", str(cfg), "-o", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume (no config.yaml" in capsys.readouterr().err


def test_train_prints_a_summary_of_steps_states_minutes_and_validation(tmp_path, capsys):
    cfg = write_config(tmp_path, val_split="test", val_every=10, log_every=5)
    run = tmp_path / "run"
    assert main(["train", str(cfg), "-o", str(run), "--no-progress", "--set", "train.steps=20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"checkpoint: {run / 'checkpoint.safetensors'}"
    trained, val = lines[-3], lines[-2]
    assert trained.startswith("trained: 20 steps, 1,280 sampled states (64 inputs x 1 x 1 "
                              "process(es) per step), ")
    assert trained.endswith(" min (train.steps reached)")
    final = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert final.get("final") and val == (
        "last validation (test, step 20, 3 iterations): "
        + "  ".join(f"{k[4:]}={v:.4g}" for k, v in final.items() if k.startswith("val_")))


def test_a_cascade_summary_counts_every_stage(tmp_path, capsys):
    cfg = write_config(tmp_path, mode="cascade", stages=2, steps=5)
    assert main(["train", str(cfg), "-o", str(tmp_path / "cr"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "trained: 10 steps over 2/2 stages, 640 sampled states" in out
    assert "last validation" not in out


def test_no_progress_silences_the_problems_own_bars_too_and_only_while_training(tmp_path, capsys,
                                                                               monkeypatch):
    from selfiter.progress import bar
    from tests.core.toy_plugin import ToyProblem

    def load_with_a_bar(self, split):
        for _ in bar(range(3), desc=f"load {split}"):
            pass
        return original(self, split)

    original = ToyProblem.load
    monkeypatch.setattr(ToyProblem, "load", load_with_a_bar)
    cfg = write_config(tmp_path)
    assert main(["train", str(cfg), "-o", str(tmp_path / "quiet"), "--no-progress",
                 "--set", "train.steps=20"]) == 0
    assert "load train" not in capsys.readouterr().err
    assert main(["train", str(cfg), "-o", str(tmp_path / "loud"), "--set", "train.steps=20"]) == 0
    assert "load train" in capsys.readouterr().err
