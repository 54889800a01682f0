"""The problem: splits from real photos (300-W for training, packaged photos for the test),
reproducible; missing data named; the metrics; the example config validates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from image_align.metrics import alignment_metrics, corner_error
from image_align.problem import ImageAlign
from selfiter.config import load_config
from selfiter.errors import DataError
from selfiter.interfaces import ProblemData

REPO = Path(__file__).resolve().parents[2]
SMALL = dict(size=32, photo_side=64, max_shift=6.0, n_train=40, n_val=10, n_test=24)


def test_the_training_splits_need_the_300w_folder_and_say_which(tmp_path):
    with pytest.raises(DataError, match="data_root"):
        ImageAlign(**SMALL).load("train")
    missing = tmp_path / "no_300w"
    with pytest.raises(DataError, match=str(missing)):
        ImageAlign(data_root=missing, **SMALL).load("train")
    with pytest.raises(DataError, match="no photos in"):
        ImageAlign(data_root=tmp_path, **SMALL).load("val")


def test_the_test_split_is_packaged_photos_and_reproducible(skimage_data):
    problem = ImageAlign(**SMALL)
    data = problem.load("test")
    assert data.inputs.shape == (24, 2, 32, 32) and data.inputs.dtype == torch.uint8
    assert data.theta_gt.shape == (24, 8) and float(data.theta_gt.abs().max()) <= 6.0
    assert all(name.startswith("skimage:") for name in data.meta["photo"])
    n = len(problem.test_photos)
    assert data.source == f"{n} packaged photos ({', '.join(problem.test_photos[:2])}, ...)"
    two = ImageAlign(**SMALL, test_photos=list(problem.test_photos[:2])).load("test")
    assert two.source == f"2 packaged photos ({', '.join(problem.test_photos[:2])})"
    again = ImageAlign(**SMALL).load("test")
    assert torch.equal(data.inputs, again.inputs) and torch.equal(data.theta_gt, again.theta_gt)
    assert not torch.equal(ImageAlign(**SMALL, seed=1).load("test").theta_gt, data.theta_gt)


def test_an_unknown_test_photo_is_named(skimage_data):
    with pytest.raises(DataError, match="no_such_photo"):
        ImageAlign(**SMALL, test_photos=["skimage:no_such_photo"]).load("test")
    with pytest.raises(DataError, match="expected 'skimage:NAME'"):
        ImageAlign(**SMALL, test_photos=["camera"]).load("test")


def test_train_and_val_come_from_different_300w_photos(data_300w):
    problem = ImageAlign(data_root=data_300w, limit_photos=6, **SMALL)
    train, val = problem.load("train"), problem.load("val")
    assert train.inputs.shape == (40, 2, 32, 32) and val.inputs.shape == (10, 2, 32, 32)
    assert not set(train.meta["photo"]) & set(val.meta["photo"])


def test_the_dihedral_augmentation_keeps_shapes_and_is_seeded():
    problem = ImageAlign(**SMALL)
    g = torch.Generator().manual_seed(0)
    inputs = torch.randint(0, 256, (16, 2, 32, 32), generator=g, dtype=torch.uint8)
    theta = torch.randn(16, 8, generator=g)
    a = problem.augment(inputs, theta, torch.Generator().manual_seed(1))
    b = problem.augment(inputs, theta, torch.Generator().manual_seed(1))
    assert a[0].shape == inputs.shape and a[0].dtype == torch.uint8 and a[1].shape == theta.shape
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], theta)
    off = ImageAlign(**SMALL, dihedral=False).augment(inputs, theta, torch.Generator().manual_seed(1))
    assert off[0] is inputs and off[1] is theta


def test_corner_error_and_success_rates():
    gt = torch.zeros(4, 8)
    pred = gt.clone()
    pred[1, 0::2] = 0.5  # every corner 0.5 px off in x
    pred[2, 0::2], pred[2, 1::2] = 3.0, 4.0  # every corner 5 px off
    pred[3, 0] = float("nan")
    err = corner_error(pred, gt)
    assert err[:3].tolist() == [0.0, 0.5, 5.0] and err[3] == float("inf")
    m = alignment_metrics(pred[:3], gt[:3])
    assert list(m)[0] == "corner_err"
    assert m["corner_err"] == pytest.approx(5.5 / 3)
    assert m["success_1px"] == pytest.approx(200 / 3) and m["success_3px"] == pytest.approx(200 / 3)
    problem = ImageAlign(**SMALL)
    assert problem.metrics(pred[:3], ProblemData(torch.zeros(3, 2, 32, 32), gt[:3])) == m


def test_the_example_config_validates_against_the_components():
    cfg = load_config(REPO / "examples" / "image_align.yaml")
    assert cfg.problem.name == "image_align" and cfg.features.name == "correlation_volume"
    assert cfg.train.states_per_input > 1
    assert Path(cfg.problem.params["data_root"]) == (REPO.parent / "shared" / "data" / "300w").resolve() \
        or Path(cfg.problem.params["data_root"]) == REPO.parent / "shared" / "data" / "300w"


def test_a_relative_data_root_is_kept_absolute_for_the_checkpoint(tmp_path, monkeypatch):
    # a config named by a relative path: its data_root is resolved against the config's
    # folder and saved absolute, so a checkpoint's embedded config, read from the run
    # folder, still finds the data (it once resolved ../.. against the run folder)
    import yaml

    from selfiter.config import config_from_dict

    raw = yaml.safe_load((REPO / "examples" / "image_align.yaml").read_text())
    raw["problem"]["params"]["data_root"] = "../data/300w"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "align.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    cfg = load_config("configs/align.yaml")
    assert cfg.problem.params["data_root"] == str(tmp_path / "data" / "300w")
    again = config_from_dict(yaml.safe_load(cfg.to_yaml()),
                             source="runs/align/checkpoint.safetensors (embedded config)")
    assert again.problem.params["data_root"] == str(tmp_path / "data" / "300w")
