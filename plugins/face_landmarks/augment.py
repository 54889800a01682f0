"""Training-time augmentation of faces and their 68 landmarks, batched on the images' device.

Images are uint8 ``(B, C, H, W)``; landmarks ``theta: (B, 2L)`` are frame
pixels ``x_1, y_1, ...`` with pixel row ``r``, column ``c`` centred at
``x = c``, ``y = r``. Every function draws its per-sample choices from
``generator`` (which must live on the images' device) and returns new tensors.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from face_landmarks.mirror import MIRROR_68, mirror_points


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round_().clamp_(0, 255).to(torch.uint8)


def random_flip(images: torch.Tensor, theta: torch.Tensor, generator: torch.Generator,
                p: float = 0.5, mirror: Sequence[int] = MIRROR_68,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip each face left-right with probability ``p``: ``x -> W - 1 - x``.

    The points are renumbered by ``mirror`` so that every index keeps its
    meaning: point 37 (1-based) is still the outer corner of the eye on the
    image's left, as in an unflipped face."""
    b, w = images.shape[0], images.shape[-1]
    flipped = mirror_points(theta, w, mirror)  # checks the count before any draw
    flip = torch.rand(b, generator=generator, device=images.device) < p  # (B,)
    out_images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    return out_images, torch.where(flip[:, None], flipped, theta)


def random_similarity(images: torch.Tensor, theta: torch.Tensor, generator: torch.Generator,
                      rotate_deg: float = 15.0, scale: float = 0.1, shift: float = 0.05,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """A random similarity per face, applied to the image and the points alike.

    Rotation about the frame centre ``((W-1)/2, (H-1)/2)`` uniform in
    ``±rotate_deg`` degrees, scale factor uniform in ``1 ± scale``, shift uniform
    in ``±shift`` of the frame's width (x) and height (y). A point ``p`` moves to
    ``s R (p - c) + c + d``; the image is resampled (bilinear, black outside) so
    that what was under ``p`` is under the moved point.
    """
    b, _, h, w = images.shape
    dev = images.device
    u = torch.rand(b, 4, generator=generator, device=dev) * 2.0 - 1.0  # (B, 4) in [-1, 1)
    angle = u[:, 0] * math.radians(rotate_deg)
    factor = 1.0 + u[:, 1] * scale
    d = u[:, 2:] * torch.tensor([w * shift, h * shift], device=dev)  # (B, 2) px
    cos, sin = angle.cos(), angle.sin()
    fwd = torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)  # (B, 2, 2)
    fwd = fwd * factor[:, None, None]
    centre = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], device=dev)

    # Output pixel q reads input pixel fwd^-1 (q - c - d) + c. affine_grid works in
    # align_corners coordinates n = (p - c) / half, so conjugate by half = diag((W-1)/2, (H-1)/2).
    inv = fwd.transpose(1, 2) / (factor * factor)[:, None, None]  # (s R)^-1 = R^T / s
    half = centre  # the centre's coordinates are also the half-extents
    lin = inv * half[None, None, :] / half[None, :, None]  # half^-1 inv half
    off = -(inv @ d[:, :, None])[..., 0] / half  # (B, 2)
    affine = torch.cat((lin, off[:, :, None]), -1)  # (B, 2, 3)
    grid = F.affine_grid(affine, list(images.shape), align_corners=True)
    warped = F.grid_sample(images.to(torch.float32), grid, mode="bilinear", padding_mode="zeros",
                           align_corners=True)

    pts = theta.reshape(b, -1, 2)
    fwd, centre, d = fwd.to(pts), centre.to(pts), d.to(pts)
    moved = (pts - centre) @ fwd.transpose(1, 2) + centre + d[:, None]
    return _to_uint8(warped), moved.reshape_as(theta)


def random_colour(images: torch.Tensor, generator: torch.Generator, brightness: float = 0.2,
                  contrast: float = 0.2) -> torch.Tensor:
    """Random contrast about each image's mean grey, then brightness, per face.

    The contrast factor is uniform in ``1 ± contrast``; the brightness offset
    uniform in ``±brightness`` of the full scale (255), the same for all channels.
    """
    b = images.shape[0]
    u = torch.rand(b, 2, generator=generator, device=images.device) * 2.0 - 1.0
    gain = (1.0 + u[:, 0] * contrast)[:, None, None, None]
    offset = (u[:, 1] * brightness * 255.0)[:, None, None, None]
    x = images.to(torch.float32)
    mean = x.mean((1, 2, 3), keepdim=True)
    return _to_uint8((x - mean) * gain + mean + offset)
