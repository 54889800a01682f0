"""Template/image pairs: the image seen through the true homography is the template, with
the settings' light change; draws are reproducible; the dihedral augmentation is exact."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from image_align.homography import corners_to_matrix, warp_image
from image_align.problem import ImageAlign, mirror, transpose
from image_align.synthesis import PairSettings, draw_shifts, make_pairs
from tests.image_align.helpers import synthetic_photos

CLEAN = dict(contrast=0.0, brightness=0.0, gradient=0.0, blur=0.0, noise=0.0)


def misfit(inputs: torch.Tensor, theta: torch.Tensor, border: int = 10) -> torch.Tensor:
    """RMS of the image warped back by ``theta`` minus the template, ``border`` px inside
    the template (farther in than the template's corners move, so that every template
    point compared is seen in the image): ``(N,)`` grey levels."""
    x = inputs.float()
    s = x.shape[-1]
    back = warp_image(x[:, 1:], corners_to_matrix(theta.double(), s).float(), (s, s))[:, 0]
    b = border
    return (back - x[:, 0])[:, b:-b, b:-b].pow(2).mean((1, 2)).sqrt()


def test_the_image_warped_back_by_the_truth_is_the_template():
    photos = synthetic_photos(4, 96)
    inputs, theta, which = make_pairs(photos, 40, PairSettings(size=48, max_shift=8.0, **CLEAN),
                                      torch.Generator().manual_seed(0))
    assert inputs.shape == (40, 2, 48, 48) and inputs.dtype == torch.uint8
    assert theta.shape == (40, 8) and which.shape == (40,) and int(which.max()) < 4
    assert theta.abs().max() <= 8.0
    at_truth, at_identity = misfit(inputs, theta), misfit(inputs, torch.zeros_like(theta))
    # what is left at the truth is two bilinear resamplings and the uint8 rounding
    assert float(at_truth.max()) < 6.0
    assert bool((at_identity > 3 * at_truth).all())


def test_pairs_are_reproducible_and_the_seed_matters():
    photos = synthetic_photos(3, 80)
    settings = PairSettings(size=32, max_shift=6.0)
    a = make_pairs(photos, 20, settings, torch.Generator().manual_seed(3))
    b = make_pairs(photos, 20, settings, torch.Generator().manual_seed(3))
    c = make_pairs(photos, 20, settings, torch.Generator().manual_seed(4))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[1], c[1])


def test_the_ring_law_moves_every_corner_by_exactly_max_shift():
    photos = synthetic_photos(2, 80)
    _, theta, _ = make_pairs(photos, 50, PairSettings(size=32, shift_law="ring", max_shift=5.0),
                             torch.Generator().manual_seed(0))
    torch.testing.assert_close(theta.reshape(-1, 4, 2).norm(dim=-1), torch.full((50, 4), 5.0))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 0.95), st.floats(0.0, 8.0))
def test_a_ring_share_of_the_box_law_moves_all_corners_of_its_pairs_alike(seed, share, low):
    box = PairSettings(size=32, max_shift=8.0)
    mixed = PairSettings(size=32, max_shift=8.0, ring_share=share, ring_min=low)
    d = draw_shifts(4000, mixed, torch.Generator().manual_seed(seed))
    radius = d.reshape(-1, 4, 2).norm(dim=-1)  # (n, 4)
    ring = (radius.max(1).values - radius.min(1).values) < 1e-4  # every corner alike
    assert bool((radius[ring] >= low - 1e-4).all() and (radius[ring] <= 8.0 + 1e-4).all())
    assert bool((d.abs() <= 8.0 + 1e-4).all())  # no coordinate beyond max_shift either way
    # the ring's share: an exact binomial test at a 1e-6 false-alarm rate (box pairs whose
    # four corners happen to be equally far never occur in floats)
    assert binomtest(int(ring.sum()), 4000, share).pvalue > 1e-6
    # a share of 0 draws exactly what the box law alone draws
    zero = PairSettings(size=32, max_shift=8.0, ring_share=0.0, ring_min=low)
    assert torch.equal(draw_shifts(50, zero, torch.Generator().manual_seed(seed)),
                       draw_shifts(50, box, torch.Generator().manual_seed(seed)))


def test_the_ring_share_reaches_the_training_pairs_only():
    photos = synthetic_photos(2, 80)
    problem = ImageAlign(size=32, photo_side=80, max_shift=6.0, ring_share=1.0, ring_min=6.0)
    assert problem.train_settings.ring_share == 1.0 and problem.settings.ring_share == 0.0
    _, theta, _ = make_pairs(photos, 30, problem.train_settings, torch.Generator().manual_seed(1))
    torch.testing.assert_close(theta.reshape(-1, 4, 2).norm(dim=-1), torch.full((30, 4), 6.0))


def test_the_light_change_changes_the_image_only():
    photos = synthetic_photos(2, 80)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    clean = make_pairs(photos, 16, PairSettings(size=32, max_shift=4.0, **CLEAN), g())
    lit = make_pairs(photos, 16, PairSettings(size=32, max_shift=4.0, **{**CLEAN, "brightness": 0.3,
                                                                          "contrast": 0.5}), g())
    assert torch.equal(clean[0][:, 0], lit[0][:, 0]) and torch.equal(clean[1], lit[1])
    assert (clean[0][:, 1].float() - lit[0][:, 1].float()).abs().mean() > 10


@pytest.mark.parametrize("flip", [mirror, transpose])
def test_a_mirrored_or_transposed_pair_is_a_pair_of_its_own(flip):
    photos = synthetic_photos(3, 96)
    inputs, theta, _ = make_pairs(photos, 24, PairSettings(size=48, max_shift=8.0, **CLEAN),
                                  torch.Generator().manual_seed(2))
    f_inputs, f_theta = flip(inputs, theta)
    assert float(misfit(f_inputs, f_theta).max()) < 6.0
    assert torch.equal(flip(*flip(inputs, theta))[1], theta)


@pytest.mark.parametrize("view", ImageAlign(size=48, max_shift=8.0).test_views(),
                         ids=lambda v: v.name)
def test_each_test_view_is_a_pair_of_its_own_and_maps_theta_back(view):
    photos = synthetic_photos(3, 96)
    inputs, theta, _ = make_pairs(photos, 24, PairSettings(size=48, max_shift=8.0, **CLEAN),
                                  torch.Generator().manual_seed(3))
    assert float(misfit(view.inputs(inputs), view.theta(theta)).max()) < 6.0
    assert torch.equal(view.theta_back(view.theta(theta)), theta)
    assert torch.equal(view.theta(view.theta_back(theta)), theta)


def test_the_test_views_are_the_three_symmetries_dihedral_training_draws():
    views = ImageAlign(size=48, max_shift=8.0).test_views()
    assert [v.name for v in views] == ["mirror", "transpose", "mirror+transpose"]
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    # mirror then transpose is a quarter turn (counter-clockwise on screen)
    assert torch.equal(views[2].inputs(x), torch.rot90(x, 1, (-2, -1)))


def test_settings_are_checked_by_name():
    with pytest.raises(ValueError, match="max_shift must be below size / 3"):
        PairSettings(size=30, max_shift=10.0)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        PairSettings(noise=-1.0)
    with pytest.raises(ValueError, match=r"ring_share must be in \[0, 1\], got 1.5"):
        PairSettings(ring_share=1.5)
    with pytest.raises(ValueError, match=r"ring_min must be in \[0, max_shift = 32.0\], got 40"):
        PairSettings(ring_min=40.0)
