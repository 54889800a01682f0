"""The composed detector test set (benchmarks/composed_faces.py): its truth is where its pixels are."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from face_landmarks.data.layout import SAMPLE_ROOT, list_faces
from face_landmarks.data.pts import read_pts
from face_landmarks.detectors.calibration import box_iou

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import composed_faces as cf  # noqa: E402

SAMPLES = list_faces(SAMPLE_ROOT, "common")
POINTS = read_pts(SAMPLES[0].pts).numpy()
NOSE_TIP = 30


@settings(max_examples=60, deadline=None)
@given(st.floats(-30, 30), st.floats(30, 300), st.floats(-500, 4000), st.floats(-500, 3000),
       st.integers(0, len(SAMPLES) - 1))
def test_the_moved_points_have_the_landmark_box_asked_for(angle, side, cx, cy, which):
    points = read_pts(SAMPLES[which].pts).numpy()
    affine = cf.face_affine(points, side, angle, (cx, cy))
    moved = cf.moved(points, affine)
    np.testing.assert_allclose(cf.box_of(moved),
                               [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2],
                               atol=1e-6 * max(1.0, abs(cx), abs(cy)))
    # a similarity turning the face by angle (counter-clockwise as shown, y down)
    a, b = affine[0, 0], affine[1, 0]
    np.testing.assert_allclose(affine[:, :2], [[a, -b], [b, a]], atol=1e-12)
    assert np.rad2deg(np.arctan2(-b, a)) == pytest.approx(angle, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.floats(-30, 30), st.floats(40, 260), st.floats(0, 1), st.floats(0, 1))
def test_pasted_pixels_lie_where_the_affine_puts_the_points(angle, side, u, v):
    # a dark face with one bright spot on the nose tip: after the paste, the spot's
    # centroid is the moved nose-tip point
    face = np.zeros((320, 320, 3), np.uint8)
    yy, xx = np.mgrid[:320, :320]
    x, y = POINTS[NOSE_TIP]
    face[..., 0] = np.round(255 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 6.0 ** 2)))
    canvas = np.zeros((700, 900, 3), np.uint8)
    centre = (side / 2 + u * (900 - side), side / 2 + v * (700 - side))
    affine = cf.face_affine(POINTS, side, angle, centre)
    cf.paste(canvas, face, cf.face_mask(face.shape[:2], cf.box_of(POINTS)), affine)
    w = canvas[..., 0].astype(np.float64)
    cy, cx = np.mgrid[:700, :900]
    found = np.array([(w * cx).sum(), (w * cy).sum()]) / w.sum()
    np.testing.assert_allclose(found, cf.moved(POINTS[NOSE_TIP], affine), atol=0.35 + 0.002 * side)


def test_a_composed_image_is_reproducible_and_its_faces_do_not_overlap():
    pytest.importorskip("skimage", reason="the backgrounds are scikit-image's packaged photos: "
                                          "pip install -e '.[image_align]'")
    for index in (0, 1, 2, 3, 5):
        a, b = cf.compose(index, SAMPLES, seed=7), cf.compose(index, SAMPLES, seed=7)
        assert a.name == b.name and np.array_equal(a.image, b.image)
        assert np.array_equal(a.boxes, b.boxes)
        assert a.image.dtype == np.uint8 and a.image.ndim == 3 and a.image.shape[2] == 3
        if index % cf.EMPTY_EVERY == cf.EMPTY_EVERY - 1:
            assert len(a.boxes) == 0
        else:
            assert 1 <= len(a.boxes) <= cf.MAX_FACES
        for box, pts in zip(a.boxes, a.points):
            np.testing.assert_allclose(box, cf.box_of(pts))
            side = box[2] - box[0]
            assert cf.SIZE_BINS[0][0] <= side <= cf.SIZE_BINS[-1][1] + 1e-9
            h, w = a.image.shape[:2]
            assert box[0] >= -1e-9 and box[1] >= -1e-9 and box[2] <= w + 1e-9 and box[3] <= h + 1e-9
        iou = box_iou(a.boxes, a.boxes)
        assert (iou[~np.eye(len(a.boxes), dtype=bool)] == 0).all()
        if a.grey:
            assert (a.image[..., 0] == a.image[..., 1]).all()
    assert not np.array_equal(cf.compose(0, SAMPLES, seed=7).image,
                              cf.compose(0, SAMPLES, seed=8).image)
