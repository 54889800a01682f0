"""The face frame: a ``frame_size`` x ``frame_size`` RGB view of one face.

A face is mapped to its frame by a similarity transform taking a square box of
the image onto the whole frame. By default the box comes from the ground-truth
landmarks: it is square, centred on the centre of the landmarks' bounding box,
and its side is ``box_scale`` times that bounding box's longer side.
``box_scale = 1.4`` (:data:`DEFAULT_BOX_SCALE`) leaves about a fifth of the
landmark box as margin on every side, room for the sampled start shapes and
augmentation to move without leaving the frame. Any other box (a face
detector's) gives a frame through :func:`box_frames` the same way.

Coordinates are in pixels with the pixel-centre convention, in the image and in
the frame alike: pixel (row i, column j) has its centre at ``x = j, y = i``, so
the frame's pixels cover ``[-0.5, S - 0.5]`` and the box's edges land there.

Each frame keeps its 2 x 3 affine ``frame_to_image`` (float64), which maps a
frame point ``(x, y)`` to the image point ``A @ (x, y, 1)``; predictions made in
the frame go back to the original image through it.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

#: side of the frame, in multiples of the landmarks' bounding box's longer side
DEFAULT_BOX_SCALE = 1.4
#: frame side in pixels (the paper's 256 x 256 faces)
DEFAULT_FRAME_SIZE = 256


def landmark_boxes(points: torch.Tensor, box_scale: float = DEFAULT_BOX_SCALE) -> torch.Tensor:
    """Square boxes around landmarks: ``points: (..., K, 2) -> boxes: (..., 4)`` float64,
    ``(x0, y0, x1, y1)`` in the points' pixel coordinates."""
    pts = points.to(torch.float64)
    lo, hi = pts.amin(dim=-2), pts.amax(dim=-2)  # (..., 2)
    centre = (lo + hi) / 2
    half = (box_scale * (hi - lo).amax(dim=-1, keepdim=True)) / 2  # (..., 1)
    return torch.cat([centre - half, centre + half], dim=-1)


def box_frames(boxes: torch.Tensor, frame_size: int = DEFAULT_FRAME_SIZE,
               scale: float = 1.0) -> torch.Tensor:
    """Frame -> image affines of boxes: ``boxes: (..., 4) -> (..., 2, 3)`` float64.

    A box ``(x0, y0, x1, y1)`` (image px, continuous edges) is made square
    around its centre with ``scale`` times its longer side, then scaled onto
    the frame: its centre goes to the frame centre ``((S - 1) / 2, (S - 1) / 2)``."""
    b = boxes.to(torch.float64)
    x0, y0, x1, y1 = b.unbind(dim=-1)
    side = scale * torch.maximum(x1 - x0, y1 - y0)
    if not bool((side > 0).all()):
        raise ValueError("every box needs a positive width or height")
    a = side / frame_size  # image px per frame px
    # frame x = -0.5 (the frame's left edge) must land on the box's left edge
    tx = (x0 + x1) / 2 - side / 2 + a / 2
    ty = (y0 + y1) / 2 - side / 2 + a / 2
    zero = torch.zeros_like(a)
    return torch.stack([torch.stack([a, zero, tx], dim=-1),
                        torch.stack([zero, a, ty], dim=-1)], dim=-2)


def invert_affine(affine: torch.Tensor) -> torch.Tensor:
    """The inverse of 2 x 3 affines: ``(..., 2, 3) -> (..., 2, 3)``, same dtype."""
    linear_inv = torch.linalg.inv(affine[..., :2])
    return torch.cat([linear_inv, -(linear_inv @ affine[..., 2:])], dim=-1)


def apply_affine(points: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """``points: (..., K, 2)`` mapped by ``affine: (..., 2, 3)``; computed in float64,
    returned in the points' dtype."""
    a = affine.to(device=points.device, dtype=torch.float64)
    out = points.to(torch.float64) @ a[..., :2].transpose(-1, -2) + a[..., 2].unsqueeze(-2)
    return out.to(points.dtype)


def frame_to_image(points: torch.Tensor, frame_to_image_affine: torch.Tensor) -> torch.Tensor:
    """Frame points ``(..., K, 2)`` to image points ``(..., K, 2)`` (px)."""
    return apply_affine(points, frame_to_image_affine)


def image_to_frame(points: torch.Tensor, frame_to_image_affine: torch.Tensor) -> torch.Tensor:
    """Image points ``(..., K, 2)`` to frame points ``(..., K, 2)`` (px)."""
    return apply_affine(points, invert_affine(frame_to_image_affine.to(torch.float64)))


def warp_to_frame(image: np.ndarray, frame_to_image_affine: np.ndarray | torch.Tensor,
                  frame_size: int = DEFAULT_FRAME_SIZE) -> np.ndarray:
    """The frame of one image: ``image: (H, W, C)`` uint8 -> ``(S, S, C)`` uint8.

    Bilinear, black outside the image. Where the frame is more than twice
    coarser than the image, the part of the image under the frame is first
    area-averaged down by the whole factor ``n = floor(image px per frame px)`` so that
    fine texture does not alias; the bilinear warp then shrinks less than twice more."""
    affine = np.asarray(frame_to_image_affine, dtype=np.float64).reshape(2, 3)
    px_per_frame_px = float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))
    if px_per_frame_px > 2.0:
        # only the part of the image under the frame is shrunk (a small face in a large
        # photo would otherwise pay for the whole photo); the margin covers the area filter
        n = int(px_per_frame_px)
        corners = np.array([[-0.5, -0.5], [frame_size - 0.5, -0.5], [-0.5, frame_size - 0.5],
                            [frame_size - 0.5, frame_size - 0.5]])
        mapped = corners @ affine[:, :2].T + affine[:, 2]
        margin = 2 * px_per_frame_px + 2
        size = np.array(image.shape[1::-1])  # (W, H)
        # the part starts on a multiple of n, so its blocks of n x n pixels are the whole
        # photo's, and spans whole blocks: cv2's area filter has a fast path (about 15 times
        # faster here) for whole factors only
        lo = np.clip(np.floor(mapped.min(0) - margin), 0, size).astype(int) // n * n
        hi = np.clip(np.ceil(mapped.max(0) + margin), 0, size).astype(int)
        blocks = (hi - lo) // n
        if (blocks < 1).any():  # the frame lies outside the image (or on a sliver): all black
            return np.zeros((frame_size, frame_size) + image.shape[2:], np.uint8)
        (x0, y0), (x1, y1) = lo, lo + blocks * n
        image = cv2.resize(image[y0:y1, x0:x1], tuple(int(b) for b in blocks),
                           interpolation=cv2.INTER_AREA)
        # cv2.resize maps pixel centres: x_small = (x - x0) / n + (1 / n - 1) / 2
        affine = np.hstack([affine[:, :2] / n, (affine[:, 2:] - lo[:, None]) / n + (1 / n - 1) / 2])
    # affine maps destination (frame) pixels to source (image) pixels: cv2's inverse map
    return cv2.warpAffine(image, affine, (frame_size, frame_size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
