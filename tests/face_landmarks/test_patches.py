"""PatchExtractor: pixel-centre convention, bilinear sampling, batching, normalisation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from face_landmarks.patches import PatchExtractor


def random_images(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, h, w), generator=g, dtype=torch.uint8)


def ramp_image(h: int = 40, w: int = 40) -> torch.Tensor:
    """``(1, 3, H, W)`` uint8 with value ``x + 2 y + 10 c``: bilinear is exact on it."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    img = x + 2 * y + 10 * torch.arange(3)[:, None, None]
    return img[None].to(torch.uint8)


def test_integer_centre_is_a_crop():
    images = random_images(2, 48, 64)
    # (x, y) per landmark, integer, far enough inside for a 7 x 7 crop
    pts = torch.tensor([[[3, 3], [60, 44], [20, 31]], [[10, 5], [33, 40], [57, 3]]])
    patches = PatchExtractor(patch_size=7).features(images, pts.reshape(2, -1).double())
    assert patches.shape == (2, 3, 3, 7, 7) and patches.dtype == torch.float32
    for b in range(2):
        for l in range(3):
            x, y = pts[b, l].tolist()
            crop = images[b, :, y - 3:y + 4, x - 3:x + 4]
            # float32 grid normalisation leaves ~1e-6 px: a few thousandths of a grey level
            assert_close(patches[b, l], crop.float() / 255 - 0.5, atol=1e-5, rtol=0)
            assert torch.equal(((patches[b, l] + 0.5) * 255).round().to(torch.uint8), crop)


def test_spacing_strides_the_crop():
    images = random_images(1, 40, 40)
    ex = PatchExtractor(patch_size=5, spacing=2.0)
    patches = ex.features(images, torch.tensor([[20.0, 17.0]]))
    crop = images[0, :, 13:22:2, 16:25:2].float() / 255 - 0.5
    assert_close(patches[0, 0], crop, atol=1e-5, rtol=0)


@settings(max_examples=50, deadline=None)
@given(x=st.floats(8.0, 31.0), y=st.floats(8.0, 31.0), spacing=st.floats(0.25, 1.75))
def test_bilinear_is_exact_on_a_ramp(x, y, spacing):
    ex = PatchExtractor(patch_size=5, spacing=spacing)
    patch = ex.features(ramp_image(), torch.tensor([[x, y]]))[0, 0]
    off = (torch.arange(5, dtype=torch.float64) - 2) * spacing
    xs, ys = x + off[None, :], y + off[:, None]  # (5, 5): column j, row i
    expected = torch.stack([xs + 2 * ys + 10 * c for c in range(3)]) / 255 - 0.5
    assert_close(patch, expected.float(), atol=1e-5, rtol=0)


def test_one_face_alone_equals_it_in_a_batch():
    images = random_images(4, 64, 64, seed=1)
    theta = torch.rand(4, 10, generator=torch.Generator().manual_seed(2)) * 70 - 3  # some off the edge
    ex = PatchExtractor(patch_size=9, spacing=1.3)
    batch = ex.features(images, theta)
    for b in range(4):
        assert_close(ex.features(images[b:b + 1], theta[b:b + 1]), batch[b:b + 1])


def test_outside_the_frame_is_black():
    images = random_images(1, 32, 32)
    far = torch.tensor([[-100.0, 50.0]])
    assert (PatchExtractor(patch_size=5).features(images, far) == -0.5).all()
    assert (PatchExtractor(patch_size=5, normalize="standardize").features(images, far) == 0).all()


def test_standardize_gives_zero_mean_unit_std():
    images = random_images(2, 64, 64)
    theta = torch.tensor([[20.0, 20.0, 40.5, 33.2], [31.0, 12.0, 50.0, 50.0]])
    patches = PatchExtractor(patch_size=11, normalize="standardize").features(images, theta)
    flat = patches.flatten(2)
    assert_close(flat.mean(-1), torch.zeros(2, 2), atol=1e-5, rtol=0)
    assert_close(flat.std(-1, correction=0), torch.ones(2, 2), atol=1e-3, rtol=0)


def test_feature_shape_matches_features_at_paper_size():
    ex = PatchExtractor()
    assert ex.feature_shape((3, 256, 256), 136) == (68, 3, 57, 57)
    images, theta = torch.zeros(1, 3, 256, 256, dtype=torch.uint8), torch.full((1, 136), 128.0)
    assert ex.features(images, theta).shape == (1, 68, 3, 57, 57)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        PatchExtractor(patch_size=0)
    with pytest.raises(ValueError):
        PatchExtractor(spacing=0)
    with pytest.raises(ValueError):
        PatchExtractor(normalize="minmax")
    with pytest.raises(ValueError, match="theta"):
        PatchExtractor().features(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, 3))
