"""The learned extractors and their heads: shapes, what they compare, finite features for
wild states, and the context laws (solving on the cached encoding equals encoding again
at every iteration; M states sharing an encoding step like M copies), for both pairs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from image_align.features import CorrelationVolumeExtractor, WarpedGridExtractor, grid_points
from image_align.homography import corner_step, corners_to_matrix, template_corners, warp_points
from image_align.networks import AlignHead, FlowFitHead
from selfiter.solver import LearnedModel, make_solver
from tests.core.test_learned_extractor import assert_sharing_is_copying
from tests.image_align.helpers import synthetic_photos

SMALL = dict(size=32, widths=(8, 16), blocks=(0, 1), out_channels=6, stride=4, grid=8)
#: the correlation_volume extractor at the same scale: 8 x 8 cells, levels of 4, 8, 16 px
SMALL_VOLUME = dict(size=32, widths=(8, 16, 16), blocks=(0, 1, 0), out_channels=6, stride=4,
                    grid=8, levels=3, radius=2)


def small_model(seed: int = 0, **extra) -> LearnedModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ex = WarpedGridExtractor(**{**SMALL, **extra})
        head = AlignHead(ex.feature_shape((2, 32, 32), 8), 8, width=8, hidden=16, output_scale=2.0)
        # the head's last layer starts at zero (no step); give it weights, so the law is not trivial
        torch.nn.init.normal_(head.mlp[-1].weight, std=0.1)
    return LearnedModel(ex, [head]).eval()


def small_volume_model(seed: int = 0, **extra) -> LearnedModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ex = CorrelationVolumeExtractor(**{**SMALL_VOLUME, **extra})
        head = FlowFitHead(ex.feature_shape((2, 32, 32), 8), 8, width=8, output_scale=2.0)
        torch.nn.init.normal_(head.body[-1].weight, std=0.1)
    return LearnedModel(ex, [head]).eval()


#: every extractor/head pair of the plugin, for the laws they all obey
MODELS = pytest.mark.parametrize("build", [small_model, small_volume_model],
                                 ids=["warped_grid", "correlation_volume"])


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


@MODELS
def test_a_global_light_change_of_the_image_leaves_the_features_alone(build):
    ex = build().extractor
    x = pairs(2)
    lit = x.clone()
    lit[:, 1] = (x[:, 1].float() * 0.5 + 40).round().to(torch.uint8)
    with torch.no_grad():
        a = ex.features(ex.encode(x), torch.zeros(2, 8))
        b = ex.features(ex.encode(lit), torch.zeros(2, 8))
    assert_close(a, b, atol=0.05, rtol=0.05)  # equal but for the rounding to grey levels


@MODELS
def test_wild_states_give_finite_features(build):
    ex = build().extractor
    theta = torch.tensor([[1e9] * 8, [float("nan")] * 8, [-1e9, 0, 0, 0, 0, 0, 0, 0],
                          [float("inf")] + [0.0] * 7])
    with torch.no_grad():
        f = ex.features(ex.encode(pairs(4)), theta)
    assert bool(torch.isfinite(f).all())
    head = build().regressors[0]
    with torch.no_grad():
        assert bool(torch.isfinite(head(f)).all())


@MODELS
def test_solving_on_the_cached_context_equals_encoding_at_every_iteration(build):
    model = build(seed=3)
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


@MODELS
def test_m_states_sharing_one_encoding_get_the_steps_of_m_copies(build):
    model = build(seed=4)
    x = pairs(3, seed=2)
    theta = torch.randn(3 * 4, 8, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad():
        shared = model(x, theta)[0]
        copied = model(x.repeat_interleave(4, 0), theta)[0]
    assert_close(shared, copied)


@MODELS
def test_m_states_sharing_one_encoding_get_the_gradients_of_m_copies(build):
    # the law the trainer relies on: one encoding, M states, the gradients of M copies
    model = build(seed=5).train()
    theta = torch.randn(2 * 3, 8, generator=torch.Generator().manual_seed(2)) * 2
    assert_sharing_is_copying(model, pairs(2, seed=3), theta, 3, atol=1e-5, rtol=1e-4)


def test_the_volume_is_shared_by_repeated_states_and_copied_for_a_subset():
    ex = small_volume_model().extractor
    context = ex.encode(pairs(3, seed=6))
    shared = ex.repeat(context, torch.arange(3).repeat_interleave(4))
    assert shared.states == 4 and shared.levels[0] is context.levels[0]
    theta = torch.randn(12, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        f = ex.features(shared, theta)
        # states 5 and 11 (pairs 1 and 2), picked from the shared context, then alone
        picked = ex.select(shared, torch.tensor([5, 11]))
        assert picked.states == 1
        assert_close(ex.features(picked, theta[[5, 11]]), f[[5, 11]])
        assert_close(ex.features(ex.select(context, torch.tensor([1, 2])), theta[[5, 11]]),
                     f[[5, 11]])


def test_the_volume_s_feature_shape_and_its_errors():
    ex = CorrelationVolumeExtractor(**SMALL_VOLUME)
    assert ex.feature_shape((2, 32, 32), 8) == (3 * 25 + 1 + 10, 8, 8)
    with pytest.raises(ValueError, match="features.params.size = 32"):
        ex.feature_shape((2, 64, 64), 8)
    with pytest.raises(ValueError, match="levels must be >= 1"):
        CorrelationVolumeExtractor(**{**SMALL_VOLUME, "levels": 5})
    with pytest.raises(ValueError, match="radius must be >= 1"):
        CorrelationVolumeExtractor(**{**SMALL_VOLUME, "radius": 0})


def test_the_volume_is_the_cosine_of_template_and_image_features_and_pools_by_two():
    ex = small_volume_model().extractor
    x = pairs(2)
    with torch.no_grad():
        volume = ex.encode(x).levels
        maps = ex.encoder((x.float() / 255 - x.float().mean((2, 3), keepdim=True) / 255)
                          .reshape(4, 1, 32, 32) / (x.float() / 255).std((2, 3), correction=0)
                          .reshape(4, 1, 1, 1).pow(2).add(1e-4).sqrt()).reshape(2, 2, 6, 8, 8)
    assert [tuple(v.shape) for v in volume] == [(2, 64, 8, 8), (2, 64, 4, 4), (2, 64, 2, 2)]
    # point 9 (grid cell (1, 1)) is at px (5.5, 5.5): 1.375 map cells (of 4 px) in each way
    a = torch.tensor([0.625, 0.375])
    t = (maps[:, 0, :, 1:3, 1:3] * (a[:, None] * a[None, :])).sum((2, 3))  # (2, K) bilinear
    cos = torch.nn.functional.cosine_similarity(t[:, :, None, None], maps[:, 1], dim=1)
    assert_close(volume[0][:, 9], cos, atol=1e-5, rtol=1e-4)
    assert_close(volume[1], torch.nn.functional.avg_pool2d(volume[0], 2))
    assert bool((volume[0].abs() <= 1 + 1e-5).all())


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.5, 50.0))
def test_a_centred_volume_ignores_what_every_place_of_a_map_shares(seed, size):
    # a 4 x 4 grid: every point lies between map cells (an 8 x 8 grid's last row and column
    # read the zero padding beyond the map, which no shared part reaches)
    ex = small_volume_model(seed, center=True, grid=4).extractor
    x = pairs(2, seed % 100)
    plain = ex.encode(x).levels
    g = torch.Generator().manual_seed(seed)
    shared = torch.randn(2, 2, 6, 1, 1, generator=g) * size  # a vector per map, all places
    forward = ex.encoder.forward
    ex.encoder.forward = lambda frames: (forward(frames).reshape(2, 2, 6, 8, 8)
                                         + shared).reshape(4, 6, 8, 8)
    moved = ex.encode(x).levels
    for a, b in zip(plain, moved):  # float32 cancels the shared part only to its precision
        assert_close(a, b, atol=3e-5 * (1 + size), rtol=0)


def test_moving_the_state_by_one_cell_shifts_every_window_by_one_cell():
    ex = small_volume_model().extractor
    context = ex.encode(pairs(2, seed=5))
    w = 2 * 2 + 1  # radius 2
    shift = torch.tensor([8.0, 0] * 4)[None].expand(2, 8)  # 2 level-0 cells, 1 level-1 cell
    with torch.no_grad():
        at0 = ex.features(context, torch.zeros(2, 8))[:, :3 * w * w].reshape(2, 3, w, w, 8, 8)
        at1 = ex.features(context, shift)[:, :3 * w * w].reshape(2, 3, w, w, 8, 8)
    # window column c at the moved state reads the column c + 2 (level 0), c + 1 (level 1)
    inner = (slice(None), slice(None), slice(None), slice(1, 5))  # points whose windows stay inside
    assert_close(at1[:, 0, :, :w - 2][inner], at0[:, 0, :, 2:][inner], atol=1e-5, rtol=1e-4)
    assert_close(at1[:, 1, :, :w - 1][inner], at0[:, 1, :, 1:][inner], atol=1e-5, rtol=1e-4)


def test_the_geometry_channels_are_the_points_and_the_corners_where_the_state_puts_them():
    ex = small_volume_model().extractor
    theta = torch.tensor([[2.0, -1, 3, 0, -2, 1, 0, 4]])
    with torch.no_grad():
        f = ex.features(ex.encode(pairs(1)), theta)
    assert_close(f[0, -8:, 3, 5], template_corners(32).reshape(8) + theta[0])
    expected = warp_points(corners_to_matrix(theta, 32), grid_points(32, 8))[0]  # (64, 2)
    assert_close(f[0, -10:-8].flatten(1).T, expected)
    inside = ((expected >= 0) & (expected <= 31)).all(-1).float()
    assert_close(f[0, -11].flatten(), inside)
    assert 0 < float(inside.sum()) < 64  # the state moves some points out


def test_an_untrained_flow_fit_head_keeps_the_state_and_its_gradient_is_finite():
    ex = small_volume_model(max_theta=100.0).extractor
    head = FlowFitHead(ex.feature_shape((2, 32, 32), 8), 8, width=8)
    f = ex.features(ex.encode(pairs(3)), torch.randn(3, 8) * 2)
    step = head(f)
    assert_close(step, torch.zeros(3, 8))
    outside = ex.features(ex.encode(pairs(1)), torch.full((1, 8), 80.0))  # every point outside
    torch.nn.init.normal_(head.body[-1].weight, std=0.1)
    (head(f).abs().sum() + head(outside).abs().sum()).backward()
    assert all(bool(torch.isfinite(p.grad).all()) for p in head.parameters())
    assert_close(head(outside), torch.zeros(1, 8))  # no support: no move
    with pytest.raises(ValueError, match="geometry channels"):
        FlowFitHead((9, 8, 8), 8)


@MODELS
def test_a_state_of_the_wrong_shape_is_named(build):
    ex = build().extractor
    context = ex.encode(pairs(2))
    with pytest.raises(ValueError, match=r"theta must be \(B=2, 8\) corner displacements, got \(2, 6\)"):
        ex.features(context, torch.zeros(2, 6))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.5, 6.0))
def test_the_flow_goals_fit_back_to_the_target_they_came_from(seed, scale):
    """Law: the per-point flows the auxiliary loss asks for are the ones whose weighted
    least-squares homography (the head's own fit, uniform weights) moves the corners by
    exactly the target; a point outside the image is asked nothing (prediction = goal)."""
    g = torch.Generator().manual_seed(seed)
    model = small_volume_model(seed % 1000, max_theta=100.0)
    theta = torch.randn(3, 8, generator=g) * scale
    target = torch.randn(3, 8, generator=g) * scale
    head = model.regressors[0]
    with torch.no_grad():
        f = model.extractor.features(model.extractor.encode(pairs(3, seed % 7)), theta)
        delta, auxiliary = head.forward_train(f)
        pred, goal = auxiliary(target)
    assert_close(delta, head(f))
    assert pred.shape == goal.shape == (3, 2 * 64)
    points = f[:, -10:-8].flatten(2).transpose(1, 2)  # (3, 64, 2)
    corners = f[:, -8:, 0, 0].reshape(3, 4, 2)
    fitted = corner_step(points, points + goal.reshape(3, 64, 2), torch.ones(3, 64), corners)
    assert_close(fitted, target, atol=1e-3 * scale, rtol=1e-3)
    outside = f[:, -11].flatten(1) == 0  # (3, 64)
    assert_close(pred.reshape(3, 64, 2)[outside], goal.reshape(3, 64, 2)[outside])
    inside = ~outside
    assert not torch.allclose(pred.reshape(3, 64, 2)[inside], goal.reshape(3, 64, 2)[inside])


def test_the_flow_loss_trains_the_head_towards_the_flows():
    """A few steps on the auxiliary loss alone bring the head's flows nearer their goals
    (the gradient reaches the body through the prediction, not through the goal)."""
    model = small_volume_model(3).train()
    theta, target = torch.randn(4, 8) * 2, torch.randn(4, 8) * 2
    inputs = pairs(4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    errors = []
    for _ in range(80):
        _, _, auxiliary = model(inputs, theta)
        pred, goal = auxiliary(target)
        loss = (pred - goal).abs().mean()
        assert goal.grad_fn is None
        opt.zero_grad()
        loss.backward()
        opt.step()
        errors.append(float(loss.detach()))
    assert errors[-1] < 0.6 * errors[0]
