"""Config validation: every fault is one line naming the file, the key and what was expected."""

from __future__ import annotations

import pytest
import yaml

from selfiter.config import config_from_dict, load_config
from selfiter.errors import ConfigError
from tests.core.toy_plugin import toy_config


def write(tmp_path, data, name="c.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def test_valid_config_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, toy_config()))
    assert cfg.train.steps == 200 and cfg.train.lr == 0.01
    again = config_from_dict(yaml.safe_load(cfg.to_yaml()))
    assert again.to_dict() == cfg.to_dict()


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c["train"].update(lr="fast"), "train.lr: expected a number, got 'fast'"),
        (lambda c: c["train"].update(stpes=3), "train.stpes: unknown key"),
        (lambda c: c["train"].update(mode="both"), "train.mode: expected one of 'sir', 'cascade'"),
        (lambda c: c["train"].update(steps=True), "train.steps: expected an integer, got True"),
        (lambda c: c.pop("problem"), "problem: missing"),
        (lambda c: c.update(extra={}), "extra: unknown key"),
        (lambda c: c["regressor"]["params"].update(widht=3), "regressor.params.widht: unknown parameter of regressor 'mlp'"),
        (lambda c: c["regressor"]["params"].update(hidden="big"), "regressor.params.hidden: expected a list"),
        (lambda c: c["sampler"].update(name="nope"), "sampler.name: no sampler named 'nope'; registered: gaussian_union"),
        (lambda c: c["parameter_model"].update(params={}), "parameter_model.params.names: missing"),
        (lambda c: c["regressor"]["params"].update(theta_dim=3), "regressor.params.theta_dim: unknown parameter"),
        (lambda c: c["train"].update(batch_size=0), "train.batch_size: expected an integer >= 1, got 0"),
        (lambda c: c["train"].update(lr=-0.1), "train.lr: expected a number > 0, got -0.1"),
        (lambda c: c["train"].update(grad_clip=0), "train.grad_clip: expected a number > 0, got 0.0"),
        (lambda c: c["train"].update(trajectory=1.5), "train.trajectory: expected a share in [0, 1], got 1.5"),
        (lambda c: c["train"].update(mode="cascade", trajectory=0.5), "train.trajectory: applies to mode 'sir' only"),
        (lambda c: c["solver"].update(iterations=-1), "solver.iterations: expected an integer >= 0, got -1"),
    ],
)
def test_bad_values_name_file_key_and_expectation(tmp_path, mutate, expected):
    data = toy_config()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert msg.startswith(str(path)), msg
    assert expected in msg
    assert "\n" not in msg


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="nothere.yaml: config file not found"):
        load_config(tmp_path / "nothere.yaml")
    with pytest.raises(ConfigError, match=r"c.yaml: line 2 not valid YAML"):
        load_config(write(tmp_path, "train:\n  lr: : 1\n"))
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_overrides(tmp_path):
    path = write(tmp_path, toy_config())
    cfg = load_config(path, ["train.lr=0.5", "train.minutes=1", "regressor.params.hidden=[8, 8]",
                             "train.val_split=test"])
    assert cfg.train.lr == 0.5 and cfg.train.minutes == 1.0
    assert cfg.regressor.params["hidden"] == [8, 8]
    assert cfg.train.val_split == "test"
    with pytest.raises(ConfigError, match="--set 'train.lr': expected KEY=VALUE"):
        load_config(path, ["train.lr"])
    with pytest.raises(ConfigError, match="train.lr: expected a number, got 'x'"):
        load_config(path, ["train.lr=x"])
    with pytest.raises(ConfigError, match="--set train.lr.x: train.lr is a value, not a section"):
        load_config(path, ["train.lr.x=1"])
