"""The learned extractor: shapes, what it compares, finite features for wild states, and the
context law (solving on the cached encoding equals encoding again at every iteration)."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from image_align.features import WarpedGridExtractor, grid_points
from image_align.networks import AlignHead
from selfiter.solver import LearnedModel, make_solver
from tests.image_align.helpers import synthetic_photos

SMALL = dict(size=32, widths=(8, 16), blocks=(0, 1), out_channels=6, stride=4, grid=8)


def small_model(seed: int = 0, **extra) -> LearnedModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ex = WarpedGridExtractor(**{**SMALL, **extra})
        head = AlignHead(ex.feature_shape((2, 32, 32), 8), 8, width=8, hidden=16, output_scale=2.0)
        # the head's last layer starts at zero (no step); give it weights, so the law is not trivial
        torch.nn.init.normal_(head.mlp[-1].weight, std=0.1)
    return LearnedModel(ex, [head]).eval()


def pairs(n: int, seed: int = 0) -> torch.Tensor:
    """``(n, 2, 32, 32)`` uint8: a textured template and another texture as the image."""
    return synthetic_photos(2 * n, 32, seed).reshape(n, 2, 32, 32)


def test_grid_points_are_cell_centres_row_major():
    pts = grid_points(8, 2)
    assert_close(pts, torch.tensor([[1.5, 1.5], [5.5, 1.5], [1.5, 5.5], [5.5, 5.5]]))


def test_feature_shape_and_its_errors_name_the_size():
    ex = WarpedGridExtractor(**SMALL)
    assert ex.feature_shape((2, 32, 32), 8) == (2 * 6 + 25 + 1 + 8, 8, 8)
    assert WarpedGridExtractor(**SMALL, with_theta=False, correlation=0).feature_shape(
        (2, 32, 32), 8) == (13, 8, 8)
    assert WarpedGridExtractor(**SMALL, with_maps=False, correlation=1).feature_shape(
        (2, 32, 32), 8) == (9 + 1 + 8, 8, 8)
    with pytest.raises(ValueError, match="features.params.size = 32"):
        ex.feature_shape((2, 64, 64), 8)
    with pytest.raises(ValueError, match="8 corner coordinates"):
        ex.feature_shape((2, 32, 32), 6)


def test_at_the_identity_an_image_equal_to_its_template_reads_the_template_features():
    ex = small_model().extractor
    x = pairs(3)
    same = torch.stack([x[:, 0], x[:, 0]], 1)
    with torch.no_grad():
        f = ex.features(ex.encode(same), torch.zeros(3, 8))
    k, w = ex.encoder.out_channels, ex.window.shape[0]
    assert_close(f[:, k:2 * k], f[:, :k], atol=1e-5, rtol=1e-4)
    corr = f[:, 2 * k:2 * k + w]  # (B, W, G, G), the window's centre is the zero offset
    assert_close(corr[:, w // 2], torch.ones_like(corr[:, w // 2]), atol=1e-4, rtol=0)
    assert bool((corr <= 1 + 1e-5).all())
    assert bool((f[:, 2 * k + w] == 1).all())  # every grid point inside the image
    assert_close(f[:, 2 * k + w + 1:], torch.zeros_like(f[:, 2 * k + w + 1:]))  # theta = 0


def test_a_global_light_change_of_the_image_leaves_the_features_alone():
    ex = small_model().extractor
    x = pairs(2)
    lit = x.clone()
    lit[:, 1] = (x[:, 1].float() * 0.5 + 40).round().to(torch.uint8)
    with torch.no_grad():
        a = ex.features(ex.encode(x), torch.zeros(2, 8))
        b = ex.features(ex.encode(lit), torch.zeros(2, 8))
    assert_close(a, b, atol=0.05, rtol=0.05)  # equal but for the rounding to grey levels


def test_wild_states_give_finite_features():
    ex = small_model().extractor
    theta = torch.tensor([[1e9] * 8, [float("nan")] * 8, [-1e9, 0, 0, 0, 0, 0, 0, 0],
                          [float("inf")] + [0.0] * 7])
    with torch.no_grad():
        f = ex.features(ex.encode(pairs(4)), theta)
    assert bool(torch.isfinite(f).all())


def test_solving_on_the_cached_context_equals_encoding_at_every_iteration():
    model = small_model(seed=3)
    x = pairs(5, seed=1)
    theta0 = torch.randn(5, 8, generator=torch.Generator().manual_seed(0)) * 3
    calls = []
    encode = model.extractor.encode
    model.extractor.encode = lambda inputs: (calls.append(len(inputs)), encode(inputs))[1]
    out = make_solver(model).solve(x, theta0, 4)
    assert calls == [5]  # once per solve, whatever the number of iterations
    theta, expected = theta0.clone(), [theta0]
    with torch.no_grad():
        for k in range(4):
            theta = theta + model.step(encode(x), theta, k)
            expected.append(theta)
    assert_close(out.trajectory, torch.stack(expected))
    assert bool((out.trajectory[-1] != theta0).any())  # the steps were not all zero


def test_m_states_sharing_one_encoding_get_the_steps_of_m_copies():
    model = small_model(seed=4)
    x = pairs(3, seed=2)
    theta = torch.randn(3 * 4, 8, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad():
        shared, _ = model(x, theta)
        copied, _ = model(x.repeat_interleave(4, 0), theta)
    assert_close(shared, copied)
