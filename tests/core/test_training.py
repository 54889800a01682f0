"""The trainer on the toy problem: learning, resume, cascade, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import selfiter
from selfiter.checkpoint import load_checkpoint
from selfiter.config import config_from_dict
from selfiter.errors import CheckpointError, ConfigError, TrainingError
from selfiter.evaluation import score
from selfiter.training import train, trainer
from tests.core.toy_plugin import toy_config


def test_sir_training_learns_and_the_checkpoint_rebuilds_the_solver(tmp_path):
    cfg = config_from_dict(toy_config(val_split="test", val_every=100))
    ckpt = train(cfg, tmp_path / "run", progress=False)
    model = selfiter.load(ckpt)
    data = model.problem.load("test")
    ev = score(model.problem, data, model.solve(data.inputs, iterations=3), "test")
    start, final = ev.per_iteration[0]["err"], ev.per_iteration[-1]["err"]
    assert final < 0.05 * start
    # iterating the same regressor keeps improving (or holds) on this contractive problem
    errs = [m["err"] for m in ev.per_iteration]
    assert errs[2] <= errs[1] <= errs[0]
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [50, 100, 150, 200]
    assert records[-1]["final"] and "val_err" in records[-1]
    assert (tmp_path / "run" / "config.yaml").is_file()


def _weights(path):
    return load_file(str(path))


@pytest.mark.parametrize("features", ["toy_residual", "toy_learned_residual"])
@pytest.mark.parametrize("trajectory", [0.0, 0.5], ids=["sampled", "trajectory"])
def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch, trajectory, features):
    raw = toy_config(steps=200, checkpoint_every=50, trajectory=trajectory,
                     states_per_input=1 if features == "toy_residual" else 3)
    raw["features"] = {"name": features}  # the learned one: its encoder's weights resume too
    cfg = config_from_dict(raw)
    full = train(cfg, tmp_path / "full", progress=False)

    real_step = trainer.train_step

    def dying_step(parts, data, model, net, step, *a, **k):
        if step == 130:
            raise KeyboardInterrupt
        return real_step(parts, data, model, net, step, *a, **k)

    monkeypatch.setattr(trainer, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", progress=False)
    monkeypatch.setattr(trainer, "train_step", real_step)
    assert torch.load(tmp_path / "cut" / "trainer_state.pt", weights_only=False)["step"] == 100
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    assert any(k.startswith("extractor.") for k in a) == (features == "toy_learned_residual")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    steps = [json.loads(l)["step"] for l in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [50, 100, 150, 200]


def test_a_run_folder_is_never_overwritten_and_resume_checks_the_config(tmp_path):
    cfg = config_from_dict(toy_config(steps=50))
    train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="already holds a training run; pass --resume"):
        train(cfg, tmp_path / "run", progress=False)
    changed = config_from_dict(toy_config(steps=50, lr=0.5))
    with pytest.raises(ConfigError, match="cannot resume: train.lr was 0.01 in the saved run, now 0.5"):
        train(changed, tmp_path / "run", resume=True, progress=False)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(cfg, tmp_path / "empty", resume=True, progress=False)


def test_cascade_trains_one_regressor_per_stage(tmp_path):
    cfg = config_from_dict(toy_config(mode="cascade", stages=3, steps=100))
    ckpt = train(cfg, tmp_path / "cr", progress=False)
    data = load_checkpoint(ckpt)
    assert data.mode == "cascade" and len(data.regressors) == 3
    model = selfiter.load(ckpt)
    assert model.max_iterations == 3
    test = model.problem.load("test")
    res = model.solve(test.inputs, iterations=3)
    errs = [model.problem.metrics(res.trajectory[k], test)["err"] for k in range(4)]
    assert errs[3] < 0.1 * errs[0]
    with pytest.raises(ValueError, match="a cascade runs at most one iteration per stage"):
        model.solve(test.inputs, iterations=4)


def test_time_budget_stops_training(tmp_path):
    cfg = config_from_dict(toy_config(steps=10**9, minutes=0.02, log_every=10**8))
    ckpt = train(cfg, tmp_path / "t", progress=False)
    assert 0 < load_checkpoint(ckpt).step < 10**9


def test_a_nan_loss_stops_training_with_a_clear_error(tmp_path):
    cfg = config_from_dict(toy_config(optimizer="sgd", lr=1e30, log_every=1))
    with pytest.raises(TrainingError, match=r"training diverged: the loss is (nan|inf) at step \d+; "):
        train(cfg, tmp_path / "t", progress=False)


def test_the_auxiliary_loss_is_added_with_its_weight(tmp_path):
    """With SGD, the loss plus an auxiliary copy of itself (weight 1) at learning rate lr
    trains exactly like the plain loss at 2 lr; the first logged loss is twice the plain one."""
    runs = {}
    for name, weight, lr in [("aux", 1.0, 0.01), ("plain", 0.0, 0.02)]:
        cfg = toy_config(optimizer="sgd", lr=lr, steps=20, log_every=1, auxiliary_weight=weight)
        cfg["regressor"]["name"] = "toy_mlp_auxiliary"
        ckpt = train(config_from_dict(cfg), tmp_path / name, progress=False)
        losses = [json.loads(line)["loss"] for line in
                  (tmp_path / name / "metrics.jsonl").read_text().splitlines()
                  if '"loss"' in line]
        runs[name] = (load_checkpoint(ckpt).regressors[0], losses[0])
    assert runs["aux"][1] == pytest.approx(2 * runs["plain"][1], rel=1e-5)
    for key, value in runs["plain"][0].items():
        torch.testing.assert_close(runs["aux"][0][key], value, rtol=1e-5, atol=1e-6)


def test_an_auxiliary_weight_for_a_regressor_without_one_is_a_clear_error(tmp_path):
    cfg = config_from_dict(toy_config(auxiliary_weight=0.5))
    with pytest.raises(ConfigError, match=r"train.auxiliary_weight: is 0.5, but regressor 'mlp' "
                                          r"has no auxiliary prediction to supervise; set it to 0"):
        train(cfg, tmp_path / "t", progress=False)


def test_weights_that_diverge_between_log_lines_never_overwrite_the_last_checkpoint(tmp_path):
    # the lr rises step by step (a warm-up to a huge value), so the run is sound at first
    cfg = config_from_dict(toy_config(optimizer="sgd", lr=1e9, warmup_steps=10**10, steps=10**5,
                                      log_every=10**6, checkpoint_every=1))
    with pytest.raises(TrainingError, match="the weights are no longer finite") as info:
        train(cfg, tmp_path / "t", progress=False)
    bad_step = int(str(info.value).split(" at step ")[1].split(";")[0])
    kept = load_checkpoint(tmp_path / "t" / "checkpoint.safetensors")
    assert kept.step == bad_step - 1 > 0
    assert all(torch.isfinite(w).all() for sd in kept.regressors for w in sd.values())


def test_corrupt_and_foreign_checkpoints_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.safetensors: not a readable safetensors checkpoint"):
        selfiter.load(bad)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="foreign.safetensors: not a selfiter checkpoint"):
        selfiter.load(tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="neither a checkpoint file nor a pretrained model name"):
        selfiter.load(tmp_path / "missing.safetensors")


def test_half_precision_checkpoint_loads_as_float32(tmp_path):
    from selfiter.checkpoint import save_checkpoint

    cfg = config_from_dict(toy_config(steps=20))
    data = load_checkpoint(train(cfg, tmp_path / "r", progress=False))
    save_checkpoint(tmp_path / "half.safetensors", data, half=True)
    raw = load_file(str(tmp_path / "half.safetensors"))
    assert all(v.dtype == torch.float16 for k, v in raw.items() if k.startswith("regressor."))
    back = load_checkpoint(tmp_path / "half.safetensors")
    for k, v in data.regressors[0].items():
        torch.testing.assert_close(back.regressors[0][k], v, atol=2e-3, rtol=2e-3)


def test_init_starts_from_a_checkpoints_weights_and_parameter_model(tmp_path):
    base = train(config_from_dict(toy_config(steps=100)), tmp_path / "base", progress=False)
    # one SGD step at a negligible rate: the fine-tuned weights are the ones it started from
    cfg = config_from_dict(toy_config(steps=1, init=str(base), optimizer="sgd", lr=1e-12))
    tuned = train(cfg, tmp_path / "tuned", progress=False)
    a, b = load_checkpoint(base), load_checkpoint(tuned)
    for k, v in a.regressors[0].items():
        torch.testing.assert_close(b.regressors[0][k], v, rtol=0, atol=1e-9)
    for k, v in a.parameter_model.items():
        torch.testing.assert_close(b.parameter_model[k], v, rtol=0, atol=0)
    fresh = train(config_from_dict(toy_config(steps=1, optimizer="sgd", lr=1e-12)),
                  tmp_path / "fresh", progress=False)
    w = "net.0.weight" if "net.0.weight" in a.regressors[0] else next(iter(a.regressors[0]))
    assert not torch.allclose(load_checkpoint(fresh).regressors[0][w], a.regressors[0][w])


def test_init_from_a_checkpoint_that_does_not_fit_is_a_clear_error(tmp_path):
    cascade = train(config_from_dict(toy_config(mode="cascade", stages=2, steps=5)),
                    tmp_path / "cascade", progress=False)
    with pytest.raises(CheckpointError, match=r"train.init: .*holds a cascade solver with 2 "
                                              r"regressor\(s\); this run trains sir with 1"):
        train(config_from_dict(toy_config(init=str(cascade))), tmp_path / "a", progress=False)
    with pytest.raises(CheckpointError, match="train.init: .*nothere: neither a checkpoint file nor a pretrained"):
        train(config_from_dict(toy_config(init=str(tmp_path / "nothere"))), tmp_path / "b",
              progress=False)
    wide = config_from_dict(toy_config(init=str(cascade)))
    wide.regressor.params["hidden"] = [64]
    wide.train.mode, wide.train.stages = "cascade", 2
    with pytest.raises(CheckpointError, match="train.init: .*weights do not fit regressor 'mlp'"):
        train(wide, tmp_path / "c", progress=False)
    other = toy_config(init=str(cascade))
    other["features"] = {"name": "toy_learned_residual"}
    with pytest.raises(CheckpointError, match=r"checkpoint train.init: .* holds a toy/toy_residual/mlp "
                                              r"model, this run's config asks for "
                                              r"toy/toy_learned_residual/mlp"):
        train(config_from_dict(other), tmp_path / "d", progress=False)


def test_partial_init_takes_the_tensors_that_fit_and_keeps_fresh_ones_for_the_rest(tmp_path):
    import json

    base = train(config_from_dict(toy_config(steps=50)), tmp_path / "base", progress=False)
    wide = config_from_dict(toy_config(steps=1, init=str(base), init_partial=True,
                                       optimizer="sgd", lr=1e-12))
    wide.regressor.params["hidden"] = [32, 16]  # the first layer fits, the rest is new
    tuned = load_checkpoint(train(wide, tmp_path / "wide", progress=False)).regressors[0]
    old = load_checkpoint(base).regressors[0]
    same = [k for k in tuned if k in old and tuned[k].shape == old[k].shape]
    assert same and len(same) < len(tuned)
    for k in same:  # an SGD step at a negligible rate: the checkpoint's values
        torch.testing.assert_close(tuned[k], old[k], rtol=0, atol=1e-9)
    first = json.loads((tmp_path / "wide" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["init_tensors_loaded"] == len(same) and first["init_tensors"] == len(tuned)
    with pytest.raises(CheckpointError, match="weights do not fit regressor 'mlp'"):
        wide.train.init_partial = False
        train(wide, tmp_path / "strict", progress=False)


@pytest.mark.slow
def test_compiled_training_follows_the_eager_run(tmp_path):
    eager = train(config_from_dict(toy_config(steps=20)), tmp_path / "eager", progress=False)
    compiled = train(config_from_dict(toy_config(steps=20, compile=True)), tmp_path / "compiled",
                     progress=False)
    a, b = load_checkpoint(eager).regressors[0], load_checkpoint(compiled).regressors[0]
    assert a.keys() == b.keys()  # the plain module's weights, no compile wrapper in the names
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)


def test_bf16_autocast_on_the_cpu_is_opt_in_and_still_learns(tmp_path, monkeypatch):
    calls = []
    original = torch.autocast

    def spy(device_type, *args, **kwargs):
        calls.append((device_type, kwargs.get("dtype")))
        return original(device_type, *args, **kwargs)

    monkeypatch.setattr(trainer.torch, "autocast", spy)
    train(config_from_dict(toy_config(steps=20, device="cpu", amp=True)), tmp_path / "fp32",
          progress=False)
    assert calls == []  # amp is for CUDA; on the CPU nothing is cast unless asked
    ckpt = train(config_from_dict(toy_config(device="cpu", amp_cpu=True)), tmp_path / "bf16",
                 progress=False)
    assert calls and set(calls) == {("cpu", torch.bfloat16)}
    model = selfiter.load(ckpt)
    data = model.problem.load("test")
    ev = score(model.problem, data, model.solve(data.inputs, iterations=3), "test")
    assert ev.per_iteration[-1]["err"] < 0.1 * ev.per_iteration[0]["err"]


def test_the_progress_bar_ends_where_the_time_budget_ends_the_run():
    # 10 minutes left at 2 steps/s: the run ends 1,200 steps on, not at train.steps
    assert trainer.expected_steps(100_000, 500, 600.0, 2.0) == 1_700
    assert trainer.expected_steps(1_000, 500, 600.0, 2.0) == 1_000  # steps end it first
    assert trainer.expected_steps(1_000, 500, -5.0, 2.0) == 500  # budget spent
