"""Corners <-> matrix, warping points and images: the conventions every module relies on."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.func import jacrev, vmap
from torch.testing import assert_close

from image_align.features import grid_points
from image_align.homography import (corner_step, corners_to_matrix, dlt, fit_homography,
                                    matrix_to_corners, template_corners, warp_image, warp_points)

#: |displacement| per coordinate in the property tests, px on a 128 px template: below
#: 127 / (2 sqrt 2) = 45, so that no corner can cross a diagonal (the quad stays convex)
LIMIT = 40.0
SIZE = 128


@st.composite
def displacements(draw):
    """``(theta: (B, 8), dtype)``: corner displacements in +-LIMIT px."""
    b = draw(st.integers(1, 16))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([0.01, 1.0, 10.0, LIMIT]))
    g = torch.Generator().manual_seed(seed)
    theta = ((torch.rand(b, 8, generator=g, dtype=torch.float64) * 2 - 1) * scale).to(dtype)
    return theta, dtype


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    return {"atol": 2e-3, "rtol": 0} if dtype == torch.float32 else {"atol": 1e-9, "rtol": 0}


@given(displacements())
def test_corners_to_matrix_to_corners_is_the_identity(case):
    theta, dtype = case
    h = corners_to_matrix(theta, SIZE)
    assert h.dtype == dtype and h.shape == (theta.shape[0], 3, 3)
    assert_close(h[:, 2, 2], torch.ones(theta.shape[0], dtype=dtype))
    assert_close(matrix_to_corners(h, SIZE), theta, **tolerance(dtype))


@given(displacements(), st.floats(0.1, 10.0))
def test_matrix_to_corners_to_matrix_is_the_identity_up_to_scale(case, scale):
    theta, dtype = case
    h = corners_to_matrix(theta, SIZE)
    again = corners_to_matrix(matrix_to_corners(h * scale, SIZE), SIZE)
    assert_close(again, h, atol=1e-4 if dtype == torch.float32 else 1e-11, rtol=1e-3 if dtype == torch.float32 else 1e-9)


@given(displacements())
def test_the_matrix_moves_the_corners_by_theta_and_agrees_with_the_dlt(case):
    theta, dtype = case
    h = corners_to_matrix(theta, SIZE)
    c = template_corners(SIZE, dtype)
    moved = c + theta.reshape(-1, 4, 2)
    assert_close(warp_points(h, c), moved, **tolerance(dtype))
    assert_close(dlt(c.expand_as(moved), moved), h,
                 atol=1e-3 if dtype == torch.float32 else 1e-9, rtol=1e-3 if dtype == torch.float32 else 1e-9)


def test_zero_displacement_is_the_identity_matrix(dtype):
    assert_close(corners_to_matrix(torch.zeros(3, 8, dtype=dtype), SIZE),
                 torch.eye(3, dtype=dtype).expand(3, 3, 3))


def test_a_degenerate_quadrilateral_gives_a_non_finite_matrix_not_an_error():
    c = template_corners(SIZE)
    squashed = torch.cat([c[:2], c[:2]]) - c  # all 4 corners on the top edge
    assert not torch.isfinite(corners_to_matrix(squashed.reshape(1, 8), SIZE)).all()


def test_the_jacobian_is_right_under_vmap_and_no_grad():
    # the core's Gauss-Newton takes vmap(jacrev(residual)) inside torch.no_grad, where
    # torch 2.13 differentiates linalg.solve wrongly: the closed form must not care
    theta = torch.randn(4, 8, dtype=torch.float64) * 10
    fn = lambda t: corners_to_matrix(t, SIZE).reshape(-1)  # noqa: E731
    with torch.no_grad():
        inside = vmap(jacrev(fn))(theta)
    outside = torch.stack([jacrev(fn)(t) for t in theta])
    assert_close(inside, outside)


def test_the_identity_warp_returns_the_image(dtype):
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(3, 2, 24, 40, generator=g, dtype=torch.float64) * 255).to(dtype)
    out = warp_image(images, torch.eye(3, dtype=dtype).expand(3, 3, 3), (24, 40))
    assert_close(out, images, atol=1e-3 if dtype == torch.float32 else 1e-9, rtol=0)


def test_a_translation_warp_reads_the_shifted_pixels(dtype):
    images = torch.arange(2 * 30 * 30, dtype=dtype).reshape(2, 1, 30, 30)
    h = torch.eye(3, dtype=dtype).repeat(2, 1, 1)
    h[:, 0, 2], h[:, 1, 2] = 3.0, 5.0  # out(x, y) = in(x + 3, y + 5)
    out = warp_image(images, h, (10, 12))
    assert_close(out, images[:, :, 5:15, 3:15], atol=1e-2 if dtype == torch.float32 else 1e-9, rtol=0)


def test_points_sent_to_infinity_sample_zero():
    from image_align.homography import sample

    images = torch.ones(1, 1, 8, 8)
    pts = torch.tensor([[[float("nan"), 1.0], [float("inf"), 2.0], [1e30, -1e30], [3.0, 3.0]]])
    assert_close(sample(images, pts)[0, 0], torch.tensor([0.0, 0.0, 0.0, 1.0]))


def inner_points(n: int, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """``(n, 2)`` random template px."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 2, generator=g, dtype=torch.float64) * (SIZE - 1)).to(dtype)


def spread_points(side: int, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """``(side^2, 2)`` template px: the cell centres of a ``side x side`` grid, each moved by
    up to a quarter cell (random points may all but line up, and the fit's extrapolation
    to the corners would then blow float32's rounding up)."""
    g = torch.Generator().manual_seed(seed)
    jitter = (torch.rand(side * side, 2, generator=g, dtype=torch.float64) - 0.5) * SIZE / side / 2
    return (grid_points(SIZE, side).double() + jitter).to(dtype)


@given(displacements(), st.integers(2, 8), st.integers(0, 2**31 - 1))
def test_the_weighted_fit_of_many_points_recovers_their_homography(case, side, seed):
    theta, dtype = case
    h = corners_to_matrix(theta, SIZE)
    n = side * side
    pts = spread_points(side, seed, dtype).expand(theta.shape[0], n, 2)
    g = torch.Generator().manual_seed(seed + 1)
    weight = (torch.rand(theta.shape[0], n, generator=g, dtype=torch.float64) + 0.1).to(dtype)
    fit = fit_homography(pts, warp_points(h, pts), weight)
    assert fit.dtype == dtype
    assert_close(matrix_to_corners(fit, SIZE), theta, **tolerance(dtype))


def test_points_of_weight_zero_do_not_move_the_fit():
    theta = torch.tensor([[3.0, -2, 1, 4, -5, 2, 0, 1]], dtype=torch.float64)
    pts = inner_points(40, 0, torch.float64)[None]
    target = warp_points(corners_to_matrix(theta, SIZE), pts)
    target[:, :10] += 30.0  # outliers
    weight = torch.ones(1, 40, dtype=torch.float64)
    weight[:, :10] = 0
    assert_close(matrix_to_corners(fit_homography(pts, target, weight), SIZE), theta)
    assert not torch.allclose(matrix_to_corners(fit_homography(pts, target), SIZE), theta,
                              atol=0.5)


def test_with_no_support_the_ridge_keeps_the_corners_where_they_are():
    pts = inner_points(16, 1, torch.float32)[None].expand(2, 16, 2)
    corners = template_corners(SIZE).expand(2, 4, 2)
    step = corner_step(pts, pts + 50.0, torch.zeros(2, 16), corners, ridge=1e-4)
    assert_close(step, torch.zeros(2, 8))
    assert_close(corner_step(pts, pts, torch.ones(2, 16), corners), torch.zeros(2, 8))


@given(displacements(), displacements())
def test_the_corner_step_onto_another_homography_is_the_difference_of_the_states(a, b):
    (current, dtype), (truth, _) = a, b
    n = min(current.shape[0], truth.shape[0])
    current, truth = current[:n], truth[:n].to(dtype)
    x = inner_points(32, 0, dtype)
    pts = warp_points(corners_to_matrix(current, SIZE), x)  # (B, 32, 2) where the state puts them
    targets = warp_points(corners_to_matrix(truth, SIZE), x)
    corners = template_corners(SIZE, dtype) + current.reshape(n, 4, 2)
    step = corner_step(pts, targets, torch.ones(n, 32, dtype=dtype), corners)
    assert_close(step, truth - current, **tolerance(dtype))
