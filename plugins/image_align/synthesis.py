"""Template/image pairs cut from photos: a random homography, a light change, blur and noise.

A pair is the template ``T``, a ``size x size`` square of a photo at an integer offset
``o``, and the image ``I`` of the same size, the same scene seen through a homography
``H`` (template px -> image px, see :mod:`image_align.homography`):
``I(y) = photo(o + H^-1 y)``, then made brighter or darker, with a contrast change, a
linear illumination ramp, Gaussian blur and sensor noise. The template gets sensor
noise of its own. ``theta = matrix_to_corners(H)``, so ``I(H x) ~ T(x)``.

Every draw comes from one ``torch.Generator``: a seed gives the same pairs on every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from image_align.homography import corners_to_matrix, warp_image

#: pairs synthesised at once (bounds the float copies of their photos: 256 of 320 px, 100 MB)
CHUNK = 256


@dataclass(frozen=True)
class PairSettings:
    """How pairs are drawn. Lengths in template px; grey levels in [0, 255]."""

    #: side of the template and of the image, px
    size: int = 128
    #: corner displacement law: ``box``, each of the 8 coordinates uniform in
    #: ``[-max_shift, max_shift]``; ``ring``, each corner moved by exactly ``max_shift``
    #: in a uniformly random direction (the corner error of the identity is then max_shift)
    shift_law: Literal["box", "ring"] = "box"
    #: px, see ``shift_law``
    max_shift: float = 32.0
    #: with the ``box`` law, this share of the pairs takes the ``ring`` law instead, at a
    #: radius uniform in ``[ring_min, max_shift]`` per pair: more pairs whose every corner
    #: moved far (the box law gives few), none beyond ``max_shift`` in x or y
    ring_share: float = 0.0
    #: px, see ``ring_share``
    ring_min: float = 0.0
    #: the image's contrast gain is ``exp(U(-contrast, contrast))``
    contrast: float = 0.3
    #: the image's brightness offset is ``U(-brightness, brightness) * 255``
    brightness: float = 0.1
    #: illumination ramp: the gain varies linearly across the image by up to
    #: ``+-gradient`` (relative) from its centre, in a random direction
    gradient: float = 0.2
    #: Gaussian blur of the image, sigma ``U(0, blur)`` px
    blur: float = 1.0
    #: sensor noise of the image and (drawn separately) the template, std ``U(0, noise)``
    noise: float = 3.0

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"size must be >= 8 px, got {self.size}")
        if self.shift_law not in ("box", "ring"):
            raise ValueError(f"shift_law must be 'box' or 'ring', got {self.shift_law!r}")
        for name in ("max_shift", "contrast", "brightness", "gradient", "blur", "noise"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.ring_share <= 1:
            raise ValueError(f"ring_share must be in [0, 1], got {self.ring_share}")
        if not 0 <= self.ring_min <= self.max_shift:
            raise ValueError(f"ring_min must be in [0, max_shift = {self.max_shift}], got "
                             f"{self.ring_min}")
        if self.max_shift >= self.size / 3:
            raise ValueError(f"max_shift must be below size / 3 = {self.size / 3:.3g} px (beyond "
                             f"it corners can cross and the quadrilateral fold), got {self.max_shift}")


def draw_shifts(n: int, settings: PairSettings, g: torch.Generator) -> torch.Tensor:
    """Corner displacements ``(n, 8)`` px by the settings' law (a ``ring_share`` of 0 draws
    nothing more than the box law alone)."""
    m = settings.max_shift
    if settings.shift_law == "ring":
        return ring_shifts(torch.full((n,), m), g)
    box = (torch.rand(n, 8, generator=g) * 2 - 1) * m
    if settings.ring_share == 0:
        return box
    ring = torch.rand(n, generator=g) < settings.ring_share  # (n,)
    radius = settings.ring_min + torch.rand(n, generator=g) * (m - settings.ring_min)
    return torch.where(ring[:, None], ring_shifts(radius, g), box)


def ring_shifts(radius: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Every corner moved by ``radius: (n,)`` px in its own uniformly random direction:
    ``(n, 8)`` px."""
    angle = torch.rand(radius.shape[0], 4, generator=g) * (2 * math.pi)
    return (torch.stack([angle.cos(), angle.sin()], -1) * radius[:, None, None]).reshape(-1, 8)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Blur each of ``images: (B, h, w)`` by its own ``sigma: (B,)`` px (separable, one
    grouped convolution per axis, edges replicated); ``max_sigma`` sets the kernel's radius."""
    b = images.shape[0]
    radius = max(1, math.ceil(3 * max_sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)  # (K,)
    k = torch.exp(-0.5 * (x / sigma.clamp_min(1e-3)[:, None]) ** 2)  # (B, K); tiny sigma: a delta
    k = k / k.sum(1, keepdim=True)
    out = F.pad(images[None], (radius, radius, radius, radius), mode="replicate")  # (1, B, h', w')
    out = F.conv2d(out, k[:, None, None, :], groups=b)  # along x
    return F.conv2d(out, k[:, None, :, None], groups=b)[0]  # along y


def light_change(images: torch.Tensor, settings: PairSettings, g: torch.Generator) -> torch.Tensor:
    """``images: (B, S, S)`` grey levels -> gain field * images + offset (see the settings)."""
    b, s = images.shape[0], images.shape[-1]
    u = torch.rand(b, 4, generator=g)
    gain = torch.exp((u[:, 0] * 2 - 1) * settings.contrast)  # (B,)
    offset = (u[:, 1] * 2 - 1) * settings.brightness * 255.0  # (B,)
    angle = u[:, 2] * (2 * math.pi)
    slope = u[:, 3] * settings.gradient  # (B,) relative gain change from the centre to an edge
    c = torch.linspace(-1.0, 1.0, s)
    ramp = angle.cos()[:, None, None] * c[None, None, :] + angle.sin()[:, None, None] * c[None, :, None]
    field = gain[:, None, None] * (1 + slope[:, None, None] * ramp)  # (B, S, S)
    return images * field + offset[:, None, None]


def make_pairs(photos: torch.Tensor, n: int, settings: PairSettings, g: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` pairs from ``photos: (P, side, side)`` uint8 (photo of each pair uniform).

    Returns ``inputs: (n, 2, S, S)`` uint8 (channel 0 the template, 1 the image),
    ``theta: (n, 8)`` float32 px, the true corner displacements, and ``photo: (n,)`` long,
    the photo of each pair. The template is placed at least ``1.5 * max_shift`` px inside
    the photo where the photo allows, so that the image sees scene, not the photo's edge."""
    if photos.dim() != 3 or photos.shape[1] != photos.shape[2]:
        raise ValueError(f"photos must be (P, side, side), got {tuple(photos.shape)}")
    p, side = photos.shape[0], photos.shape[1]
    s = settings.size
    if side < s:
        raise ValueError(f"photos of {side} px cannot hold a {s} px template; raise photo_side")
    margin = min(math.ceil(1.5 * settings.max_shift), (side - s) // 2)
    inputs = torch.empty(n, 2, s, s, dtype=torch.uint8)
    thetas, which = [], []
    ar = torch.arange(s)
    for a in range(0, n, CHUNK):
        b = min(CHUNK, n - a)
        idx = torch.randint(p, (b,), generator=g)  # (b,)
        off = torch.randint(margin, side - s - margin + 1, (b, 2), generator=g)  # (b, 2) x, y px
        theta = draw_shifts(b, settings, g)  # (b, 8)
        src = photos[idx].float()  # (b, side, side)
        # the template: an exact integer crop
        rows, cols = off[:, 1, None] + ar, off[:, 0, None] + ar  # (b, S)
        template = src[torch.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]
        # the image: image px -> template px (H^-1) -> photo px (+ o)
        h = corners_to_matrix(theta.double(), s)  # float64: the inverse of a near-singular H
        shift = torch.eye(3, dtype=torch.float64).repeat(b, 1, 1)
        shift[:, :2, 2] = off.double()
        to_photo = (shift @ torch.linalg.inv(h)).float()  # (b, 3, 3)
        image = warp_image(src[:, None], to_photo, (s, s))[:, 0]  # (b, S, S)
        image = light_change(image, settings, g)
        if settings.blur > 0:
            image = gaussian_blur(image, torch.rand(b, generator=g) * settings.blur, settings.blur)
        pair = torch.stack([template, image], 1)  # (b, 2, S, S)
        noise = torch.rand(b, 2, 1, 1, generator=g) * settings.noise
        pair = pair + noise * torch.randn(pair.shape, generator=g)
        inputs[a:a + b] = pair.clamp(0, 255).round().to(torch.uint8)
        thetas.append(theta)
        which.append(idx)
    return inputs, torch.cat(thetas), torch.cat(which)
