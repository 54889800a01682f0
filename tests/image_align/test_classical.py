"""The classical baselines: the core's Gauss-Newton takes the same steps with forward- and
reverse-mode Jacobians, and
both it and OpenCV's ECC recover small homographies (the conventions agree)."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from image_align.classical import Level, bilinear, ecc_align, gauss_newton_align, lk_residual
from image_align.homography import sample
from image_align.metrics import corner_error
from image_align.synthesis import PairSettings, make_pairs
from selfiter.solver import GaussNewtonSolver
from tests.image_align.helpers import synthetic_photos

CLEAN = dict(contrast=0.0, brightness=0.0, gradient=0.0, blur=0.0, noise=1.0)


def small_pairs(n: int, shift: float, seed: int = 0):
    photos = synthetic_photos(4, 128, seed, sigma=3.0)
    settings = PairSettings(size=64, shift_law="ring", max_shift=shift, **CLEAN)
    return make_pairs(photos, n, settings, torch.Generator().manual_seed(seed))


def test_bilinear_agrees_with_grid_sample_inside_and_outside():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 1, 20, 30, generator=g, dtype=torch.float64) * 255
    pts = torch.rand(200, 2, generator=g, dtype=torch.float64) * torch.tensor([36.0, 26.0]) - 3
    assert_close(bilinear(image[0, 0], pts), sample(image, pts[None])[0, 0])


def test_forward_mode_jacobians_take_the_reverse_mode_step():
    inputs, theta, _ = small_pairs(4, 3.0)
    x, start = inputs.double(), (theta + 1.0).double()
    residual = lk_residual(64, 12)
    reverse = GaussNewtonSolver(residual).compute_delta(x, start, 0)
    assert_close(GaussNewtonSolver(residual, jacobian="forward").compute_delta(x, start, 0), reverse)


def test_gauss_newton_and_ecc_recover_small_homographies_from_the_identity():
    inputs, theta, _ = small_pairs(8, 3.0, seed=1)
    start = torch.zeros_like(theta)
    gn = gauss_newton_align(inputs, start, levels=(Level(2.0, 8, 16), Level(1.0, 8, 24)))
    ecc = ecc_align(inputs, start)
    for found in (gn, ecc):
        err = corner_error(found, theta)
        assert float(err.median()) < 0.5, err
