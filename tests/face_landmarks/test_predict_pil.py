"""``model.predict`` takes a PIL image as it takes the same photo's path or array."""

from __future__ import annotations

import numpy as np
from PIL import Image

from face_landmarks.data.layout import SAMPLE_ROOT, list_faces
from face_landmarks.predict import load_image, read_image

PHOTO = list_faces(SAMPLE_ROOT, "common")[0].image


def test_a_pil_image_loads_as_the_rgb_array_of_its_file():
    with Image.open(PHOTO) as im:
        np.testing.assert_array_equal(load_image(im), read_image(PHOTO))
        grey = im.convert("L")
        rgba = im.convert("RGBA")
    g = load_image(grey)
    assert g.shape == (*read_image(PHOTO).shape[:2], 3) and (g[..., 0] == g[..., 2]).all()
    np.testing.assert_array_equal(load_image(rgba), read_image(PHOTO))


def test_a_pil_image_is_applied_its_exif_orientation(tmp_path):
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :10] = 255  # a white band on the left of the stored grid
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned 90 degrees clockwise
    Image.fromarray(array).save(path, exif=exif, quality=100)
    with Image.open(path) as im:
        shown = load_image(im)
    assert shown.shape == (40, 20, 3)
    np.testing.assert_array_equal(shown, read_image(path))


def test_predict_takes_one_pil_image_like_its_path(tiny_face_model):
    with Image.open(PHOTO) as im:
        from_pil = tiny_face_model.predict(im, iterations=0)
    from_path = tiny_face_model.predict(str(PHOTO), iterations=0)
    assert len(from_pil) == 1 and len(from_pil[0]) == 1
    np.testing.assert_allclose(from_pil[0][0]["points"], from_path[0][0]["points"])
