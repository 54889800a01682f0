"""300-W metrics against hand-computed values, and their invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from face_landmarks.metrics import (
    auc,
    ced_curve,
    face_errors,
    face_metrics,
    failure_rate,
    normalisers,
)

KEYS = ["nme_ip", "nme_io", "auc08", "fr08", "nme_ip_51", "nme_io_51", "auc08_51", "fr08_51"]


def _face() -> torch.Tensor:
    """A (1, 136) face whose pupils are 10 px apart and outer eye corners 14 px apart.

    1-based 37-42 (right eye) around (0, 0) with corner 37 at (-2, 0); 43-48 (left
    eye) around (10, 0) with corner 46 at (12, 0); every other point at (5, 20)."""
    pts = torch.tensor([5.0, 20.0], dtype=torch.float64).repeat(68, 1)
    # centred on 0, outer corner first, inner corner fourth
    eye = torch.tensor([[-2.0, 0.0], [-1.0, -1.0], [1.0, -1.0], [2.0, 0.0], [1.0, 1.0],
                        [-1.0, 1.0]], dtype=torch.float64)
    pts[36:42] = eye
    pts[42:48] = eye + torch.tensor([10.0, 0.0], dtype=torch.float64)
    assert pts[36].tolist() == [-2.0, 0.0] and pts[45].tolist() == [12.0, 0.0]
    return pts.reshape(1, 136)


def test_normalisers_hand_computed():
    n = normalisers(_face())
    assert n["ip"].tolist() == pytest.approx([10.0])
    assert n["io"].tolist() == pytest.approx([14.0])


def test_shifted_prediction_hand_computed():
    gt = _face()
    pred = gt + torch.tensor([3.0, 4.0], dtype=torch.float64).repeat(68)  # every point 5 px off
    m = face_metrics(pred, gt)
    assert list(m)[: len(KEYS)] == KEYS and list(m)[0] == "nme_ip"
    assert m["nme_ip"] == pytest.approx(50.0) and m["nme_ip_51"] == pytest.approx(50.0)
    assert m["nme_io"] == pytest.approx(500.0 / 14) and m["nme_io_51"] == pytest.approx(500.0 / 14)
    assert m["auc08"] == 0.0 and m["fr08"] == 100.0


def test_jaw_error_counts_for_68_points_only():
    gt = _face()
    pred = gt.clone().reshape(68, 2)
    pred[:17, 0] += 0.68  # the 17 jaw points, 0.68 px each: 0.17 px on average over 68
    m = face_metrics(pred.reshape(1, 136), gt)
    assert m["nme_ip"] == pytest.approx(100 * 0.17 / 10)
    assert m["nme_io"] == pytest.approx(100 * 0.17 / 14)
    assert m["nme_ip_51"] == 0.0 and m["nme_io_51"] == 0.0
    e = 0.17 / 14
    assert m["auc08"] == pytest.approx(100 * (0.08 - e) / 0.08)
    assert m["auc08_51"] == pytest.approx(100.0)


def test_auc_and_failure_rate_hand_computed():
    errors = torch.tensor([0.0, 0.04, 0.08, 0.1], dtype=torch.float64)
    # CED steps to 25% at 0, 50% at 0.04, 75% at 0.08: area (0.04 * 25 + 0.04 * 50) / 0.08
    assert auc(errors) == pytest.approx(37.5)
    assert failure_rate(errors) == pytest.approx(25.0)  # 0.08 itself is not a failure
    assert auc(errors, alpha=0.2) == pytest.approx(100 * (0.2 + 0.16 + 0.12 + 0.1) / 4 / 0.2)


def test_auc_is_the_integral_of_the_ced():
    errors = torch.from_numpy(np.random.default_rng(0).gamma(2.0, 0.02, 300))
    grid = torch.linspace(0, 0.08, 200_001, dtype=torch.float64)
    riemann = float(ced_curve(errors, grid)[:-1].mean())  # left sums of a right-continuous step
    assert auc(errors) == pytest.approx(riemann, abs=1e-3)


def test_ced_curve_hand_computed():
    errors = torch.tensor([0.01, 0.03, 0.03, 0.07], dtype=torch.float64)
    thresholds = torch.tensor([0.0, 0.01, 0.02, 0.03, 0.1], dtype=torch.float64)
    assert ced_curve(errors, thresholds).tolist() == pytest.approx([0.0, 25.0, 25.0, 75.0, 100.0])


def test_diverged_face_fails_and_makes_nme_nan():
    gt = _face().repeat(2, 1)
    pred = gt.clone()
    pred[1, 100] = math.nan  # x of 1-based point 51, inner
    m = face_metrics(pred, gt)
    assert math.isnan(m["nme_ip"]) and math.isnan(m["nme_io_51"])
    assert m["fr08"] == 50.0 and m["auc08"] == 50.0
    errors = face_errors(pred, gt)
    assert ced_curve(errors, torch.tensor([1e9], dtype=torch.float64)).tolist() == [50.0]


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\(3, 136\)"):
        face_metrics(torch.zeros(3, 136), torch.zeros(2, 136))
    with pytest.raises(ValueError, match="expected shape"):
        face_metrics(torch.zeros(2, 10), torch.zeros(2, 10))


def test_float32_and_float64_agree(dtype):
    gt = _face().repeat(3, 1) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)[:, None]
    pred = gt + 0.5
    m = face_metrics(pred.to(dtype), gt.to(dtype))
    assert m["nme_ip"] == pytest.approx(face_metrics(pred, gt)["nme_ip"], rel=1e-5)


faces = st.integers(0, 2**16).map(
    lambda seed: torch.from_numpy(np.random.default_rng(seed).uniform(0, 200, (4, 136))))


@settings(max_examples=50, deadline=None)
@given(gt=faces)
def test_perfect_prediction_scores_zero(gt):
    m = face_metrics(gt, gt)
    assert all(m[k] == 0.0 for k in KEYS if k.startswith(("nme", "fr")))
    assert m["auc08"] == 100.0 and m["auc08_51"] == 100.0


@settings(max_examples=30, deadline=None)
@given(
    gt=faces,
    noise_seed=st.integers(0, 2**16),
    angle=st.floats(-math.pi, math.pi),
    log_scale=st.floats(-3.0, 3.0),
    shift=st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)),
)
def test_metrics_invariant_under_a_similarity(gt, noise_seed, angle, log_scale, shift):
    pred = gt + torch.from_numpy(np.random.default_rng(noise_seed).normal(0, 4, gt.shape))
    c, s = math.cos(angle), math.sin(angle)
    rot = math.exp(log_scale) * torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    t = torch.tensor(shift, dtype=torch.float64)
    move = lambda th: (th.reshape(-1, 68, 2) @ rot.T + t).reshape(-1, 136)  # noqa: E731
    before, after = face_metrics(pred, gt), face_metrics(move(pred), move(gt))
    for k in KEYS:
        assert after[k] == pytest.approx(before[k], rel=1e-6, abs=1e-6), k
