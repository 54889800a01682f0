"""The paper's pipeline end to end on CPU: a few training steps on a few real faces
lower the loss, and the CLI trains and evaluates a face config."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from selfiter.build import build_components
from selfiter.checkpoint import load_checkpoint
from selfiter.cli.main import main
from selfiter.config import load_config
from selfiter.training import train
from selfiter.training.losses import make_loss

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "examples" / "face300w.yaml"
SMALL = ["problem.params.limit=4", "train.split=common", "train.batch_size=4", "train.val_split=null",
         "train.device=cpu", "train.optimizer=adamw", "train.lr=0.001", "train.log_every=5",
         "train.checkpoint_every=1000",
         # coarse-stage states only (around the mean): the part a few steps can learn
         "sampler.params.p_mean=1.0", "sampler.params.sigma_mean=0.3"]


def fixed_batch_loss(ckpt: Path, cfg) -> float:
    """Eq. 6 loss of a checkpoint on one fixed batch of sampled states."""
    data = load_checkpoint(ckpt)
    parts = build_components(cfg)
    parts.parameter_model.load_state_dict(data.parameter_model)
    reg = parts.make_regressor(data.feature_shape)
    reg.load_state_dict(data.regressors[0])
    faces = parts.problem.load("common")
    g = torch.Generator().manual_seed(123)
    idx = torch.arange(len(faces)).repeat(4)  # (16,)
    gt = faces.theta_gt[idx]
    model = parts.parameter_model
    theta = model.theta(parts.sampler.sample(model, model.fit(gt), g))
    with torch.no_grad():
        pred = reg(parts.extractor.features(faces.inputs[idx], theta))
    return float(make_loss(cfg.train.loss, cfg.train.loss_scale)(pred, gt - theta))


def test_a_few_steps_on_real_faces_lower_the_loss(tmp_path):
    cfg0 = load_config(CONFIG, SMALL + ["train.steps=0"])
    cfg = load_config(CONFIG, SMALL + ["train.steps=25"])
    before = fixed_batch_loss(train(cfg0, tmp_path / "init", progress=False), cfg0)
    after = fixed_batch_loss(train(cfg, tmp_path / "trained", progress=False), cfg)
    assert after < 0.8 * before, (before, after)


def test_cli_trains_and_evaluates_a_face_config(tmp_path, capsys):
    run = tmp_path / "run"
    sets = [*SMALL, "train.steps=2", "solver.iterations=2", "solver.batch_size=4"]
    assert main(["train", str(CONFIG), "-o", str(run), "--no-progress", "--set", *sets]) == 0
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(CONFIG), "--checkpoint", str(run), "--split", "common",
                 "--json", str(out), "--plot", str(tmp_path / "plots"), "--set", *sets]) == 0
    result = json.loads(out.read_text())
    assert result["split"] == "common" and result["n"] == 4
    for key in ("nme_ip", "nme_io", "auc08", "fr08", "nme_ip_51"):
        assert key in result
    assert len(result["per_iteration"]) == 3
    assert (tmp_path / "plots" / "ced.png").is_file()
    printed = capsys.readouterr().out
    assert "split common: 4 samples" in printed


def test_full_split_on_the_shared_copy_names_ibug(data_300w, capsys):
    code = main(["evaluate", str(CONFIG), "--checkpoint", "unused", "--split", "full",
                 "--data-root", str(data_300w)])
    assert code == 2
    err = capsys.readouterr().err
    assert "ibug" in err and "missing" in err
