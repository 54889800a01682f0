"""Homographies as the displacements of a square template's 4 corners, and warping.

Conventions, used by every module of the plugin:

* pixel ``(column c, row r)`` of an image has its centre at ``x = c, y = r`` (px);
  a template of side ``S`` has its corners at the centres of its corner pixels,
  in the order top-left, top-right, bottom-right, bottom-left:
  ``(0, 0), (S-1, 0), (S-1, S-1), (0, S-1)``;
* ``theta: (..., 8)`` px is ``(dx0, dy0, dx1, dy1, dx2, dy2, dx3, dy3)``: corner
  ``i`` of the template lies at ``corner_i + (dx_i, dy_i)`` in the image;
* ``H: (..., 3, 3)`` maps template px to image px (homogeneous, ``H[..., 2, 2] = 1``),
  so that ``image(H x) ~ template(x)`` at the truth. This is OpenCV's
  ``findTransformECC`` warp convention.

Every function is batched over leading dimensions (and works under ``torch.func.vmap``)
and runs on the device and in the dtype of its arguments.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: the largest |coordinate| (px) a warped point may take before sampling: a state far out
#: (or a homography sending points to infinity) must still give finite, zero features
COORD_LIMIT = 1e4


def template_corners(size: int, dtype: torch.dtype = torch.float32,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """The 4 corners of a ``size`` px template, ``(4, 2)`` px (x, y), clockwise from top-left."""
    s = float(size - 1)
    return torch.tensor([[0.0, 0.0], [s, 0.0], [s, s], [0.0, s]], dtype=dtype, device=device)


def corners_to_matrix(theta: torch.Tensor, size: int) -> torch.Tensor:
    """``theta: (..., 8)`` px -> ``H: (..., 3, 3)`` with ``H[..., 2, 2] = 1``, the homography
    taking corner ``i`` of the ``size`` px template to ``corner_i + d_i``.

    In closed form (Heckbert's square-to-quadrilateral map, composed with the scaling of
    the template onto the unit square) rather than by solving the 8x8 system of
    :func:`dlt`: exact, cheaper, and it differentiates correctly under ``torch.func``
    inside ``torch.no_grad`` (where torch 2.13's ``vmap(jacrev(...))`` of
    ``torch.linalg.solve`` returns wrong Jacobians, which would silently break the
    core's Gauss-Newton solver). A degenerate quadrilateral (3 corners on a line) has
    no homography: its matrix is then not finite (no error is raised, so one bad
    state cannot stop a batch)."""
    q = template_corners(size, theta.dtype, theta.device) + theta.reshape(*theta.shape[:-1], 4, 2)
    x, y = q[..., 0], q[..., 1]  # (..., 4) the quadrilateral's corners, px
    dx1, dx2, dx3 = x[..., 1] - x[..., 2], x[..., 3] - x[..., 2], x[..., 0] - x[..., 1] + x[..., 2] - x[..., 3]
    dy1, dy2, dy3 = y[..., 1] - y[..., 2], y[..., 3] - y[..., 2], y[..., 0] - y[..., 1] + y[..., 2] - y[..., 3]
    den = dx1 * dy2 - dx2 * dy1
    g = (dx3 * dy2 - dx2 * dy3) / den  # both 0 for a parallelogram (an affine map)
    h = (dx1 * dy3 - dx3 * dy1) / den
    one = torch.ones_like(g)
    m = torch.stack([
        x[..., 1] - x[..., 0] + g * x[..., 1], x[..., 3] - x[..., 0] + h * x[..., 3], x[..., 0],
        y[..., 1] - y[..., 0] + g * y[..., 1], y[..., 3] - y[..., 0] + h * y[..., 3], y[..., 0],
        g, h, one,
    ], -1).reshape(*g.shape, 3, 3)  # unit square -> quadrilateral
    to_unit = torch.tensor([1.0 / (size - 1), 1.0 / (size - 1), 1.0], dtype=theta.dtype,
                           device=theta.device)
    return m * to_unit  # m @ diag(to_unit): template px -> unit square -> image px


def dlt(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """The homography of 4 correspondences by the direct linear transform:
    ``src, dst: (..., 4, 2)`` px -> ``H: (..., 3, 3)`` with ``H src ~ dst`` and
    ``H[..., 2, 2] = 1`` (:func:`fit_homography`, exact for 4 points in general position;
    :func:`corners_to_matrix` is the closed form for the template's corners)."""
    return fit_homography(src, dst)


def fit_homography(src: torch.Tensor, dst: torch.Tensor, weight: torch.Tensor | None = None,
                   ridge: float = 0.0) -> torch.Tensor:
    """The homography that takes ``src`` to ``dst`` (``(..., N, 2)`` px, N >= 4) in weighted
    least squares of the direct linear transform: ``H: (..., 3, 3)``, ``H[..., 2, 2] = 1``.

    ``weight: (..., N)`` >= 0 (default 1). Coordinates are centred and scaled by ``src``'s,
    and the system is solved in float64 (whatever the dtype, which the result keeps) for
    the correction from the identity, so ``ridge > 0`` (relative to the total weight, or
    to 1 where that is smaller)
    pulls an ill-posed fit, e.g. of points that all carry weight 0, towards ``dst = src``
    (the identity) rather than towards a degenerate matrix: with ``ridge`` a learned
    head's fit stays finite whatever weights it gives. A singular system without
    ``ridge`` gives non-finite entries instead of raising."""
    dtype = src.dtype
    src, dst = src.double(), dst.double()
    centre = src.mean(-2, keepdim=True)  # (..., 1, 2)
    scale = (src - centre).abs().mean((-2, -1), keepdim=True).clamp_min(1e-12)  # (..., 1, 1)
    sn, dn = (src - centre) / scale, (dst - centre) / scale
    x, y, u, v = sn[..., 0], sn[..., 1], dn[..., 0], dn[..., 1]  # (..., N)
    one, zero = torch.ones_like(u), torch.zeros_like(u)
    # u (h6 x + h7 y + 1) = h0 x + h1 y + h2, and the same for v with h3..h5; at the identity
    # h = (1, 0, 0, 0, 1, 0, 0, 0) the left sides are x and y, so the rows' product with the
    # correction h - identity is dst - src
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)  # (..., N, 8)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)  # (..., N, 8)
    a = torch.cat([rows_u, rows_v], -2)  # (..., 2N, 8)
    b = torch.cat([u - x, v - y], -1)  # (..., 2N)
    w = one if weight is None else weight.double().clamp_min(0.0)  # (..., N)
    w = torch.cat([w, w], -1)  # (..., 2N)
    ata = a.transpose(-1, -2) @ (w[..., None] * a)  # (..., 8, 8)
    if ridge > 0:
        eye = torch.eye(8, dtype=ata.dtype, device=ata.device)
        ata = ata + (ridge * w.sum(-1).clamp_min(1.0))[..., None, None] * eye
    atb = (a.transpose(-1, -2) @ (w * b)[..., None])  # (..., 8, 1)
    # solve_ex: a singular system gives non-finite entries instead of raising
    dh = torch.linalg.solve_ex(ata, atb)[0].squeeze(-1)  # (..., 8)
    identity = dh.new_tensor([1.0, 0, 0, 0, 1, 0, 0, 0])
    hv = identity + dh
    hn = torch.cat([hv, torch.ones_like(hv[..., :1])], -1).reshape(*hv.shape[:-1], 3, 3)
    s, cx, cy = scale[..., 0, 0], centre[..., 0, 0], centre[..., 0, 1]  # (...)
    o, z = torch.ones_like(s), torch.zeros_like(s)
    t = torch.stack([1 / s, z, -cx / s, z, 1 / s, -cy / s, z, z, o], -1).reshape(*s.shape, 3, 3)
    t_inv = torch.stack([s, z, cx, z, s, cy, z, z, o], -1).reshape(*s.shape, 3, 3)
    out = t_inv @ hn @ t
    return (out / out[..., 2:, 2:]).to(dtype)


def corner_step(points: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor,
                corners: torch.Tensor, ridge: float = 0.0) -> torch.Tensor:
    """The corner increment that moves ``points`` onto ``targets`` (``(B, N, 2)`` image px,
    ``weight: (B, N)``): the weighted least-squares homography ``G`` of
    :func:`fit_homography` applied to the current ``corners: (B, 4, 2)`` px,
    ``G(corners) - corners`` as ``(B, 8)`` px in their dtype. Zero when every target is
    its point."""
    g = fit_homography(points, targets, weight, ridge)  # (B, 3, 3)
    return (warp_points(g, corners) - corners).reshape(corners.shape[0], 8)


def warp_points(h: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply ``H: (..., 3, 3)`` to ``points: (..., N, 2)`` px (or ``(N, 2)``, broadcast)
    -> ``(..., N, 2)`` px. A point sent towards infinity comes back as a large (or non-finite)
    coordinate; :func:`sample` maps those to zero features."""
    hp = points @ h[..., :2, :2].transpose(-1, -2) + h[..., None, :2, 2]  # (..., N, 2)
    w = points @ h[..., 2:, :2].transpose(-1, -2) + h[..., None, 2:, 2]  # (..., N, 1)
    return hp / w


def matrix_to_corners(h: torch.Tensor, size: int) -> torch.Tensor:
    """``H: (..., 3, 3) -> theta: (..., 8)`` px, the displacements of the template's corners
    (the inverse of :func:`corners_to_matrix`; any scale of ``H`` gives the same theta)."""
    c = template_corners(size, h.dtype, h.device)  # (4, 2)
    return (warp_points(h, c) - c).reshape(*h.shape[:-2], 8)


def pixel_grid(height: int, width: int, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> torch.Tensor:
    """The centres of every pixel of a ``height x width`` image, ``(height * width, 2)`` px,
    row-major (so a sampled ``(..., H*W)`` reshapes to ``(..., H, W)``)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                            torch.arange(width, dtype=dtype, device=device), indexing="ij")
    return torch.stack([xs, ys], -1).reshape(-1, 2)


def sample(images: torch.Tensor, points: torch.Tensor, stride: float = 1.0) -> torch.Tensor:
    """Bilinear samples of ``images: (B, C, h, w)`` at ``points: (B, N, 2)`` image px
    -> ``(B, C, N)``; zero outside the image.

    ``images`` may be a feature map at ``stride`` px per cell (cell ``j`` centred at px
    ``j * stride``, as the stride-2 convolutions of :mod:`image_align.networks` place it).
    Non-finite or huge coordinates are moved far outside, so they sample zero."""
    h, w = images.shape[-2:]
    pts = torch.nan_to_num(points, nan=-COORD_LIMIT, posinf=COORD_LIMIT, neginf=-COORD_LIMIT)
    pts = pts.clamp(-COORD_LIMIT, COORD_LIMIT) / stride
    # align_corners=True: -1 and +1 are the centres of the first and last cells
    scale = pts.new_tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
    grid = (pts * scale - 1.0).unsqueeze(1)  # (B, 1, N, 2)
    out = F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros",
                        align_corners=True)  # (B, C, 1, N)
    return out.squeeze(2)


def warp_image(images: torch.Tensor, h: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``out(x) = images(H x)`` for every pixel ``x`` of a ``size = (height, width)`` output:
    ``images: (B, C, h, w)``, ``H: (B, 3, 3)`` (output px -> input px) -> ``(B, C, *size)``.

    With the true template-to-image ``H``, ``warp_image(image, H, (S, S))`` is the
    template (where the image covers it); the identity returns the image itself."""
    b, c = images.shape[:2]
    pts = pixel_grid(*size, dtype=h.dtype, device=h.device)  # (N, 2)
    out = sample(images, warp_points(h, pts).expand(b, -1, -1))  # (B, C, N)
    return out.reshape(b, c, *size)
