"""Augmentation: mirror permutation, flips, similarities, colour; images and points together."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from face_landmarks.augment import MIRROR_68, random_colour, random_flip, random_similarity
from face_landmarks.patches import PatchExtractor


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_images(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """uint8 ``(b, 3, h, w)`` images varying slowly, so resampling them twice
    changes little and a misplaced point shows."""
    coarse = torch.rand(b, 3, 6, 6, generator=gen(seed)) * 255
    fine = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    return fine.round().clamp(0, 255).to(torch.uint8)


def sample(images: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Bilinear grey levels at points ``pts: (B, N, 2)`` -> ``(B, N, 3)``."""
    values = PatchExtractor(patch_size=1).features(images, pts.reshape(pts.shape[0], -1))
    return (values[..., 0, 0] + 0.5) * 255


def test_mirror_68_is_an_involution_and_pairs_the_right_points():
    assert sorted(MIRROR_68) == list(range(68))
    assert all(MIRROR_68[MIRROR_68[i]] == i for i in range(68))
    for a, b in [(0, 16), (7, 9), (17, 26), (21, 22), (31, 35), (32, 34), (36, 45), (37, 44),
                 (38, 43), (39, 42), (40, 47), (41, 46), (48, 54), (50, 52), (55, 59), (60, 64),
                 (61, 63), (65, 67)]:
        assert MIRROR_68[a] == b
    assert [i for i in range(68) if MIRROR_68[i] == i] == [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]


def test_mirror_68_maps_the_mean_real_face_onto_itself(data_300w):
    files = sorted((data_300w / "lfpw" / "trainset").glob("*.pts"))[:300]
    pts = []
    for f in files:
        text = f.read_text()
        body = text[text.index("{") + 1:text.index("}")]
        pts.append(np.array(body.split(), dtype=float).reshape(68, 2))
    mean = torch.from_numpy(np.mean(pts, 0))
    mean = mean - mean.mean(0)
    ocular = float((mean[36] - mean[45]).norm())

    def asymmetry(perm: list[int]) -> float:
        """Largest point distance, in inter-ocular units, between the mean face and
        its mirror image, once the mirror is turned back by the mean face's tilt."""
        m = mean[perm] * torch.tensor([-1.0, 1.0], dtype=torch.float64)
        angle = torch.atan2((m[:, 0] * mean[:, 1] - m[:, 1] * mean[:, 0]).sum(), (m * mean).sum())
        c, s = float(angle.cos()), float(angle.sin())
        turned = m @ torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
        return float((turned - mean).norm(dim=-1).max()) / ocular

    assert asymmetry(list(MIRROR_68)) < 0.03
    # the measure can tell: one pair of eyelid points mirrored wrongly shows
    wrong = list(MIRROR_68)
    wrong[40], wrong[41], wrong[46], wrong[47] = 46, 47, 40, 41
    assert asymmetry(wrong) > 0.06


def test_flip_twice_is_identity_and_once_mirrors():
    images = torch.randint(0, 256, (3, 3, 20, 30), generator=gen(0), dtype=torch.uint8)
    theta = torch.rand(3, 136, generator=gen(1), dtype=torch.float64) * 20
    once_i, once_t = random_flip(images, theta, gen(2), p=1.0)
    assert torch.equal(once_i, images.flip(-1))
    assert_close(once_t.reshape(3, 68, 2)[:, 0, 0], 29 - theta.reshape(3, 68, 2)[:, 16, 0])
    twice_i, twice_t = random_flip(once_i, once_t, gen(3), p=1.0)
    assert torch.equal(twice_i, images)
    assert_close(twice_t, theta)
    none_i, none_t = random_flip(images, theta, gen(4), p=0.0)
    assert torch.equal(none_i, images) and torch.equal(none_t, theta)


def test_flip_keeps_points_on_their_content():
    images = torch.randint(0, 256, (2, 3, 40, 40), generator=gen(5), dtype=torch.uint8)
    theta = 5 + torch.rand(2, 136, generator=gen(6)) * 30
    f_images, f_theta = random_flip(images, theta, gen(7), p=1.0)
    ex = PatchExtractor(patch_size=5)
    before, after = ex.features(images, theta), ex.features(f_images, f_theta)
    # flipped point i is original point MIRROR_68[i], its patch mirrored left-right
    assert_close(after, before[:, list(MIRROR_68)].flip(-1), atol=1e-4, rtol=0)


def test_flip_chooses_per_sample_and_repeats_with_the_seed():
    images = torch.randint(0, 256, (64, 3, 4, 4), generator=gen(8), dtype=torch.uint8)
    theta = torch.rand(64, 136, generator=gen(9))
    out, _ = random_flip(images, theta, gen(10), p=0.5)
    flipped = (out != images).flatten(1).any(1)
    assert 10 < int(flipped.sum()) < 54
    again, _ = random_flip(images, theta, gen(10), p=0.5)
    assert torch.equal(out, again)


def test_similarity_with_zero_ranges_is_identity():
    images = torch.randint(0, 256, (2, 3, 24, 32), generator=gen(11), dtype=torch.uint8)
    theta = torch.rand(2, 136, generator=gen(12)) * 24
    out_i, out_t = random_similarity(images, theta, gen(13), rotate_deg=0, scale=0, shift=0)
    assert torch.equal(out_i, images)
    assert_close(out_t, theta)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_similarity_keeps_patches_on_their_content(seed):
    h, w = 80, 112  # not square: the x and y scales of the sampling grid differ
    images = smooth_images(4, h, w, seed=seed)
    g = gen(seed)
    centre = 25 + torch.rand(4, 1, 1, 2, generator=g) * torch.tensor([w - 50.0, h - 50.0])
    off = torch.stack(torch.meshgrid(*(torch.arange(-3.0, 4.0) * 2,) * 2, indexing="xy"), -1)
    pts = (centre + off).reshape(4, -1, 2)  # a 7 x 7 patch grid, 2 px apart, around each centre
    out_i, out_t = random_similarity(images, pts.reshape(4, -1), g,
                                     rotate_deg=30, scale=0.2, shift=0.1)
    moved = out_t.reshape(4, -1, 2)
    # still in the frame after the move
    inside = ((moved > 1) & (moved < torch.tensor([w - 2.0, h - 2.0]))).all(-1)  # (B, N)
    diff = (sample(out_i, moved) - sample(images, pts)).abs()  # grey levels, (B, N, 3)
    assert float(diff[inside].max()) < 4.0


def test_similarity_repeats_with_the_seed_and_stays_uint8():
    images = smooth_images(3, 32, 32)
    theta = torch.rand(3, 136, generator=gen(14)) * 32
    a = random_similarity(images, theta, gen(15))
    b = random_similarity(images, theta, gen(15))
    assert a[0].dtype == torch.uint8 and a[0].shape == images.shape
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_colour_with_zero_ranges_is_identity():
    images = torch.randint(0, 256, (2, 3, 8, 8), generator=gen(16), dtype=torch.uint8)
    assert torch.equal(random_colour(images, gen(17), brightness=0, contrast=0), images)


def test_colour_shifts_and_stretches_per_face():
    flat = torch.full((32, 3, 4, 4), 128, dtype=torch.uint8)
    # contrast works about the mean grey: a flat image keeps its grey
    assert torch.equal(random_colour(flat, gen(18), brightness=0, contrast=0.5), flat)
    shifted = random_colour(flat, gen(19), brightness=0.2, contrast=0).to(torch.int64) - 128
    per_face = shifted.flatten(1)
    assert (per_face == per_face[:, :1]).all()  # one offset per face, all channels
    assert per_face.abs().max() <= round(0.2 * 255) and len(per_face[:, 0].unique()) > 10
    ramp = torch.arange(0, 256, 16, dtype=torch.uint8).repeat(8, 3, 4, 1)  # (8, 3, 4, 16)
    stretched = random_colour(ramp, gen(20), brightness=0, contrast=0.5).float()
    spread = stretched.std((1, 2, 3)) / ramp.float().std((1, 2, 3))
    assert ((spread > 0.45) & (spread < 1.55)).all() and spread.std() > 0.05


def test_augment_rejects_a_wrong_number_of_points():
    with pytest.raises(ValueError, match="mirror"):
        random_flip(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.zeros(1, 10), gen(0))
