"""Classical alignment on the same pairs: Gauss-Newton (Lucas-Kanade, forward additive on
the corner displacements) with the core's solver, and OpenCV's ECC.

Both start from given corner displacements and return corner displacements, so they
compare with the learned solver from the same starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from image_align.features import grid_points
from image_align.homography import corners_to_matrix, matrix_to_corners, warp_points
from image_align.synthesis import gaussian_blur
from selfiter.solver import GaussNewtonSolver

#: ``residual(pair: (2, S, S), theta: (8,)) -> r: (M,)`` for ONE pair
Residual = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def lk_residual(size: int, grid: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The Lucas-Kanade residual of ONE pair, for :class:`selfiter.solver.GaussNewtonSolver`:
    ``(pair: (2, S, S) float grey levels, theta: (8,) px) -> (grid * grid,)``, the image
    at the warped template points minus the template there (bilinear), zero where a
    warped point falls outside the image.

    A grid of points rather than every pixel, to bound the cost of a step."""
    points = grid_points(size, grid)  # (G*G, 2) px

    def residual(pair: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        pts = points.to(pair)
        warped = warp_points(corners_to_matrix(theta, size), pts)  # (G*G, 2)
        r = bilinear(pair[1], warped) - bilinear(pair[0], pts)
        # a point warped out of the image has no residual: read as 0 grey, it would pull
        # the warp away from the truth by the whole template's brightness there
        inside = ((warped >= 0) & (warped <= size - 1)).all(-1)
        return torch.where(inside, r, torch.zeros_like(r))

    return residual


def bilinear(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``image: (h, w)`` at ``points: (N, 2)`` px -> ``(N,)``, bilinear, zero outside (the
    values of :func:`image_align.homography.sample`).

    By gathering the 4 neighbours rather than through ``grid_sample``, which has no
    forward-mode derivative in torch 2.13 (the solver's ``jacobian="forward"``)."""
    h, w = image.shape[-2:]
    pts = torch.nan_to_num(points, nan=-2.0, posinf=-2.0, neginf=-2.0).clamp(-2.0, max(h, w) + 1.0)
    x0, y0 = pts[..., 0].floor(), pts[..., 1].floor()
    fx, fy = pts[..., 0] - x0, pts[..., 1] - y0
    flat = image.reshape(-1)
    out = torch.zeros_like(fx)
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                        (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
        idx = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long()
        out = out + torch.where(inside, flat.gather(0, idx), torch.zeros_like(fx)) * wgt
    return out


@dataclass(frozen=True)
class Level:
    """One level of the coarse-to-fine Gauss-Newton schedule."""

    #: Gaussian blur of template and image, px (a wider basin at the price of detail)
    sigma: float
    #: Gauss-Newton iterations at this level
    iterations: int
    #: residual points per side
    grid: int = 32


#: the default schedule: heavily blurred first (large displacements), then finer
DEFAULT_LEVELS = (Level(4.0, 10), Level(2.0, 10), Level(1.0, 10))


def gauss_newton_align(inputs: torch.Tensor, theta0: torch.Tensor,
                       levels: Sequence[Level] = DEFAULT_LEVELS, damping: float = 1e-3,
                       batch_size: int = 64, forward: bool = True) -> torch.Tensor:
    """Coarse-to-fine Gauss-Newton: ``inputs: (N, 2, S, S)`` grey levels, ``theta0: (N, 8)``
    px -> ``(N, 8)`` px, each level Gauss-Newton on :func:`lk_residual` of the blurred
    pair, from where the level before stopped, by the core's :class:`GaussNewtonSolver`
    with forward-mode Jacobians (``forward=False``: reverse mode, the same steps, slower).
    Solved ``batch_size`` pairs at a time."""
    size = inputs.shape[-1]
    x = inputs.float()
    theta = theta0.float().clone()
    for lv in levels:
        blurred = x if lv.sigma <= 0 else gaussian_blur(
            x.reshape(-1, size, size), torch.full((x.shape[0] * 2,), lv.sigma), lv.sigma
        ).reshape(x.shape)
        solver = GaussNewtonSolver(lk_residual(size, lv.grid), damping=damping,
                                   jacobian="forward" if forward else "reverse")
        for a in range(0, x.shape[0], batch_size):
            theta[a:a + batch_size] = solver.solve(blurred[a:a + batch_size],
                                                   theta[a:a + batch_size], lv.iterations).theta
    return theta


def ecc_align(inputs: torch.Tensor, theta0: torch.Tensor, iterations: int = 100,
              eps: float = 1e-5, gauss_size: int = 5) -> torch.Tensor:
    """OpenCV's ``findTransformECC`` with ``MOTION_HOMOGRAPHY``, one pair at a time:
    ``inputs: (N, 2, S, S)`` grey levels, ``theta0: (N, 8)`` px -> ``(N, 8)`` px.

    ECC maximises the correlation coefficient, invariant to a global brightness and
    contrast change. Its warp maps template px to image px, this plugin's ``H``. A pair
    on which ECC gives up (``cv2.error``: it diverged or its matrix became singular)
    comes back as NaN, a failure."""
    import cv2

    size = inputs.shape[-1]
    pairs = inputs.float().numpy()
    h0 = corners_to_matrix(theta0.double(), size).numpy()
    out = np.full((len(pairs), 3, 3), np.nan)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, eps)
    for i, (pair, h) in enumerate(zip(pairs, h0)):
        warp = (h / h[2, 2]).astype(np.float32)
        try:
            _, warp = cv2.findTransformECC(pair[0], pair[1], warp, cv2.MOTION_HOMOGRAPHY,
                                           criteria, None, gauss_size)
        except cv2.error:
            continue
        out[i] = warp
    return matrix_to_corners(torch.from_numpy(out), size).float()
