"""A tiny solver trained inside the test (seconds on 2 CPU cores) aligns photos it never saw
better than the identity start does, and the trained checkpoint loads and predicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import selfiter
from image_align.metrics import corner_error
from selfiter.config import config_from_dict
from selfiter.evaluation import score
from selfiter.training import train


#: the plugin's two extractor/head pairs, tiny: 32 px templates, stride-2 maps, an 8 x 8 grid
PAIRS = {
    "warped_grid": (
        {"name": "warped_grid", "params": {
            "size": 32, "widths": [8, 16], "blocks": [0, 0], "out_channels": 8, "stride": 2,
            "grid": 8, "theta_scale": 4.0}},
        {"name": "align_cnn", "params": {"width": 16, "hidden": 64, "output_scale": 2.0}}),
    "correlation_volume": (
        {"name": "correlation_volume", "params": {
            "size": 32, "widths": [8, 16, 16], "blocks": [0, 0, 0], "out_channels": 8,
            "stride": 2, "grid": 8, "levels": 3, "radius": 2}},
        {"name": "flow_fit", "params": {"width": 16, "output_scale": 2.0}}),
}
#: the same pairs' train keys: the flow head also trained on its per-point flows
TRAIN = {"correlation_volume_flows": {"auxiliary_weight": 1.0}}
PAIRS["correlation_volume_flows"] = PAIRS["correlation_volume"]


def tiny_config(data_root: str, steps: int, pair: str) -> dict:
    """32 px templates from 64 px photos, corners moved up to 4 px; a tiny encoder and head."""
    features, regressor = PAIRS[pair]
    return {
        "problem": {"name": "image_align", "params": {
            "data_root": data_root, "size": 32, "photo_side": 64, "n_train": 2048, "n_val": 16,
            "n_test": 96, "max_shift": 4.0, "limit_photos": 200, "seed": 0}},
        "parameter_model": {"name": "corners", "params": {}},
        "sampler": {"name": "gaussian_union",
                    "params": {"sigma": 0.4, "sigma_mean": 0.15, "p_mean": 0.5}},
        "features": features,
        "regressor": regressor,
        "train": {"steps": steps, "batch_size": 16, "states_per_input": 4, "optimizer": "adamw",
                  "lr": 0.006, "schedule": "cosine", "warmup_steps": 20, "loss": "l1",
                  "device": "cpu", "num_threads": 1, "log_every": 50, "checkpoint_every": 1000,
                  **TRAIN.get(pair, {})},
        "solver": {"iterations": 4, "batch_size": 96},
    }


@pytest.mark.slow
@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_a_model_trained_in_seconds_lowers_the_corner_error_on_most_unseen_photos(
        tmp_path, data_300w, skimage_data, pair):
    cfg = config_from_dict(tiny_config(str(data_300w), steps=300, pair=pair))
    ckpt = train(cfg, tmp_path / "run", progress=False)
    model = selfiter.load(ckpt)
    test = model.problem.load("test")
    ev = score(model.problem, test, model.solve(test.inputs), "test")
    start = corner_error(ev.result.trajectory[0], test.theta_gt)  # (N,) px, the identity
    end = corner_error(ev.result.theta, test.theta_gt)
    assert ev.n_nonfinite == 0
    assert float((end < start).float().mean()) >= 0.7, (start.mean(), end.mean())
    assert ev.metrics["corner_err"] < 0.8 * ev.per_iteration[0]["corner_err"]
    # the problem's predict: raw grey arrays in, corners and matrix out
    pairs = test.inputs[:2].numpy()
    out = model.predict((pairs[:, 0], pairs[:, 1]))
    assert len(out) == 2 and np.asarray(out[0]["corners"]).shape == (4, 2)
    assert np.asarray(out[0]["H"]).shape == (3, 3)
    corners = torch.tensor(out[0]["corners"], dtype=torch.float64).reshape(8)
    template = torch.tensor([0.0, 0, 31, 0, 31, 31, 0, 31], dtype=torch.float64)
    torch.testing.assert_close(corners - template, ev.result.theta[0].double(), atol=1e-4, rtol=0)
