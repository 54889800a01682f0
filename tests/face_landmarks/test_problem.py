"""The face300w problem and the plugin's registrations."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch

import face_landmarks
from face_landmarks import plugin
from face_landmarks.data.layout import SAMPLE_ROOT
from face_landmarks.metrics import face_metrics
from face_landmarks.problem import Face300W
from selfiter import plugins
from selfiter.config import config_from_dict
from selfiter.errors import ConfigError, DataError

MODEL_HALF = ("face_landmarks.shape_model", "face_landmarks.patches",
              "face_landmarks.networks.lan", "face_landmarks.networks.stack")


def _config(params: dict) -> dict:
    """A whole config whose only face-specific part under test is the problem."""
    return {
        "problem": {"name": "face300w", "params": params},
        "parameter_model": {"name": "pca_similarity"},
        "sampler": {"name": "gaussian_union"},
        "features": {"name": "patches"},
        "regressor": {"name": "lan"},
    }


@pytest.fixture
def model_half():
    for module in MODEL_HALF:
        pytest.importorskip(module, reason=f"{module} (the model half) is not written yet")


@pytest.fixture
def samples() -> Face300W:
    return Face300W(SAMPLE_ROOT, frame_size=64)


def test_plugin_registers_the_problem():
    assert plugins.get("problem", "face300w").obj is Face300W


def test_plugin_registers_the_model_half(model_half):
    from face_landmarks.networks.lan import LandmarksAttentionNetwork
    from face_landmarks.networks.stack import StackNetwork
    from face_landmarks.patches import PatchExtractor
    from face_landmarks.shape_model import PcaSimilarityModel

    assert plugins.get("parameter_model", "pca_similarity").obj is PcaSimilarityModel
    assert plugins.get("feature_extractor", "patches").obj is PatchExtractor
    assert plugins.get("regressor", "lan").obj is LandmarksAttentionNetwork
    assert plugins.get("regressor", "lan_stack").obj is StackNetwork


def test_pretrained_model_registered_only_when_shipped(tmp_path, monkeypatch):
    found: dict[str, Path] = {}
    monkeypatch.setattr(plugin, "MODELS", tmp_path)
    plugin.register_models(found.__setitem__)
    assert found == {}
    (tmp_path / "face300w_lan.safetensors").write_bytes(b"weights")
    plugin.register_models(found.__setitem__)
    assert found == {"face300w_lan": tmp_path / "face300w_lan.safetensors"}
    (tmp_path / "face300w.safetensors").write_bytes(b"weights")
    plugin.register_models(found.__setitem__)
    assert found["face300w"] == tmp_path / "face300w.safetensors"


def test_config_resolves_data_root_and_checks_types(tmp_path, model_half):
    cfg = config_from_dict(_config({"data_root": "data/300w", "limit": 3, "flip": 0}),
                           source=str(tmp_path / "run.yaml"))
    assert cfg.problem.params["data_root"] == str(tmp_path / "data" / "300w")
    assert cfg.problem.params["flip"] == 0.0
    with pytest.raises(ConfigError, match=r"problem\.params\.frame_size: expected an integer"):
        config_from_dict(_config({"data_root": ".", "frame_size": "big"}), source="run.yaml")
    with pytest.raises(ConfigError, match=r"problem\.params\.data_root: missing"):
        config_from_dict(_config({}), source="run.yaml")


@pytest.mark.parametrize("param, value", [
    ("frame_size", 0), ("box_scale", 0.0), ("limit", 0), ("flip", 1.5),
    ("rotate_deg", -1.0), ("scale", 1.0), ("contrast", float("nan")),
])
def test_bad_parameters_are_named(param, value):
    with pytest.raises(ConfigError, match=re.escape(f"face300w: {param}: expected")):
        Face300W(SAMPLE_ROOT, **{param: value})


def test_splits_are_the_named_ones():
    assert Face300W.splits == ("train", "common", "challenging", "full", "competition")


def test_load_caches_each_split(samples):
    data = samples.load("common")
    assert len(data) == 12 and data.inputs.shape == (12, 3, 64, 64)
    assert samples.load("common") is data
    assert len(samples.load("lfpw/testset")) == 6


def test_limit_applies_to_every_split():
    problem = Face300W(SAMPLE_ROOT, frame_size=32, limit=4)
    assert len(problem.load("common")) == 4 and len(problem.load("lfpw/testset")) == 4


def test_missing_split_names_its_folders(samples):
    with pytest.raises(DataError) as err:
        samples.load("train")
    for folder in ("afw", "helen/trainset", "lfpw/trainset"):
        assert folder in str(err.value)
    assert str(SAMPLE_ROOT) in str(err.value)


def test_metrics_are_face_metrics(samples):
    data = samples.load("common")
    pred = data.theta_gt + 1.0
    m = samples.metrics(pred, data)
    assert list(m)[0] == "nme_ip"
    assert m == face_metrics(pred, data.theta_gt)


def test_no_augmentation_needs_no_augment_module(samples, monkeypatch):
    # None in sys.modules makes any import of the module fail
    monkeypatch.setitem(sys.modules, "face_landmarks.augment", None)
    monkeypatch.delattr(face_landmarks, "augment", raising=False)
    problem = Face300W(SAMPLE_ROOT, flip=0.0)
    images, theta = torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, 136)
    out_images, out_theta = problem.augment(images, theta, torch.Generator())
    assert out_images is images and out_theta is theta


@pytest.fixture
def fake_augment(monkeypatch) -> list[tuple]:
    """Replace augment.py by a recorder of its calls."""
    calls: list[tuple] = []
    fake = types.ModuleType("face_landmarks.augment")
    fake.random_flip = lambda im, th, g, p: (calls.append(("flip", p)), (im + 1, th + 1))[1]
    fake.random_similarity = lambda im, th, g, r, s, t: (calls.append(("similarity", r, s, t)),
                                                         (im + 1, th + 1))[1]
    fake.random_colour = lambda im, g, b, c: (calls.append(("colour", b, c)), im + 1)[1]
    monkeypatch.setitem(sys.modules, "face_landmarks.augment", fake)
    monkeypatch.setattr(face_landmarks, "augment", fake, raising=False)
    return calls


def test_augment_applies_flip_similarity_colour_in_order(fake_augment):
    problem = Face300W(SAMPLE_ROOT, flip=0.3, rotate_deg=10.0, scale=0.1, shift=0.05,
                       brightness=0.2, contrast=0.25)
    images, theta = problem.augment(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.zeros(1, 136),
                                    torch.Generator())
    assert fake_augment == [("flip", 0.3), ("similarity", 10.0, 0.1, 0.05), ("colour", 0.2, 0.25)]
    assert int(images.max()) == 3 and float(theta.max()) == 2.0


def test_augment_skips_transforms_whose_params_are_zero(fake_augment):
    batch = (torch.zeros(1, 3, 4, 4), torch.zeros(1, 136), torch.Generator())
    Face300W(SAMPLE_ROOT, flip=0.0, scale=0.1).augment(*batch)
    Face300W(SAMPLE_ROOT, flip=0.5, contrast=0.1).augment(*batch)
    assert fake_augment == [("similarity", 0.0, 0.1, 0.0), ("flip", 0.5), ("colour", 0.0, 0.1)]


def test_augment_with_the_real_module(samples):
    pytest.importorskip("face_landmarks.augment", reason="augment.py (model half) not written yet")
    problem = Face300W(SAMPLE_ROOT, frame_size=64, flip=0.5, rotate_deg=10.0, scale=0.1, shift=0.05,
                       brightness=0.2, contrast=0.2)
    data = samples.load("common")
    images, theta = problem.augment(data.inputs, data.theta_gt, torch.Generator().manual_seed(0))
    assert images.shape == data.inputs.shape and images.dtype == torch.uint8
    assert theta.shape == data.theta_gt.shape and theta.dtype == data.theta_gt.dtype


def test_report_writes_ced_and_worst_faces(samples, tmp_path):
    data = samples.load("common")
    trajectory = torch.stack([data.theta_gt + 3.0, data.theta_gt + 1.0])  # (K+1, N, 136)
    paths = samples.report(trajectory, data, str(tmp_path / "plots"))
    out = tmp_path / "plots"
    assert paths == [str(out / "ced.png"), str(out / "worst_faces.png")]
    assert all(Path(p).read_bytes().startswith(b"\x89PNG") for p in paths)


def test_real_common_split(data_300w):
    problem = Face300W(data_300w, limit=8)
    data = problem.load("common")
    assert len(data) == 8 and data.inputs.shape == (8, 3, 256, 256)
    assert problem.metrics(data.theta_gt, data)["nme_ip"] == 0.0
    with pytest.raises(DataError, match="ibug"):
        problem.load("challenging")
