"""Landmarks on raw photos: image conversions, EXIF orientation, detector, batched prediction."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from face_landmarks.data.dataset import decode_image, load_faces
from face_landmarks.data.frame import frame_to_image, landmark_boxes
from face_landmarks.data.layout import SAMPLE_ROOT, list_faces
from face_landmarks.data.pts import read_pts
from face_landmarks.detectors.calibration import BoxCalibration, box_iou, calibration_file
from face_landmarks.detectors.haar import HaarFaceDetector
from face_landmarks.metrics import face_errors
from face_landmarks.predict import predict_faces, read_image, to_rgb8
from selfiter import plugins
from selfiter.api import load
from selfiter.errors import CheckpointError, ConfigError, DataError

SAMPLES = list_faces(SAMPLE_ROOT, "common")  # 12 faces, 320 x 320 crops


def sample(i: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sample face ``i``: its image (RGB) and 0-based points ``(68, 2)``."""
    return decode_image(SAMPLES[i].image), read_pts(SAMPLES[i].pts).numpy()


def gt_box(points: np.ndarray) -> list[float]:
    return landmark_boxes(torch.as_tensor(points), 1.0).tolist()


def nme(points: np.ndarray, truth: np.ndarray) -> float:
    """Inter-ocular NME of one face, ``(68, 2)`` each."""
    return float(face_errors(torch.as_tensor(points, dtype=torch.float64).reshape(1, -1),
                             torch.as_tensor(truth, dtype=torch.float64).reshape(1, -1), "io")[0])


def assert_faces(faces: list, n: int | None = None) -> None:
    """Plain-JSON faces, each a 4-float box and 68 finite [x, y]."""
    json.dumps(faces)
    if n is not None:
        assert len(faces) == n
    for face in faces:
        assert set(face) == {"box", "points"}
        assert len(face["box"]) == 4 and all(type(v) is float for v in face["box"])
        pts = np.array(face["points"])
        assert pts.shape == (68, 2) and np.isfinite(pts).all()
        assert type(face["points"][0][0]) is float


# --- conversions and reading -------------------------------------------------------------


def test_to_rgb8_converts_grey_rgba_and_16_bit():
    rgb, _ = sample()
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    for image in (grey, grey[..., None]):
        out = to_rgb8(image)
        assert out.shape == (*grey.shape, 3) and out.dtype == np.uint8
        assert (out == grey[..., None]).all()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    assert np.array_equal(to_rgb8(rgba), rgb)
    assert np.array_equal(to_rgb8(rgb.astype(np.uint16) * 257), rgb)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 4, 3), np.float32), "float32"),
    (np.zeros((4, 4, 2), np.uint8), "shape"),
    (np.zeros((0, 4, 3), np.uint8), "no pixels"),
])
def test_to_rgb8_names_what_it_cannot_take(bad, message):
    with pytest.raises(DataError, match=message):
        to_rgb8(bad)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_image_applies_every_exif_orientation_like_pil(tmp_path, orientation):
    stored = np.random.default_rng(orientation).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"  # lossless, so pixels compare exactly
    Image.fromarray(stored).save(path, exif=exif)
    assert np.array_equal(read_image(path), np.asarray(ImageOps.exif_transpose(Image.open(path))))


def test_decode_of_a_jpeg_with_an_orientation_tag(tmp_path):
    # a phone's photo: pixels stored turned 90 degrees left, the tag says "turn right to show"
    rgb, _ = sample()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(rgb, 1)).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    shown = read_image(tmp_path / "phone.jpg")
    assert shown.shape == rgb.shape
    assert np.abs(shown.astype(int) - rgb).mean() < 3  # JPEG noise only


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable image"),
    (b"this is text, not a JPEG\n", "not a readable image"),
])
def test_unreadable_files_raise_data_error(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_image(path)
    with pytest.raises(DataError, match="cannot read image"):
        read_image(tmp_path / "missing.jpg")


# --- detector ------------------------------------------------------------------------------


def test_haar_is_registered_and_calibrated():
    detector = plugins.get("detector", "haar").obj()
    assert isinstance(detector, HaarFaceDetector)
    cal = BoxCalibration.load(calibration_file("haar"))
    assert detector.calibration == cal and cal != BoxCalibration()
    # a Haar box starts at the eyebrows: the landmark box lies lower
    assert 0.05 < cal.dy < 0.3 and abs(cal.dx) < 0.05 and 0.7 < cal.scale < 1.2


def test_box_iou():
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    np.testing.assert_allclose(box_iou(a, [[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]]),
                               [[50 / 150, 0.0, 1.0]])


def test_calibration_apply_moves_and_scales_squares():
    cal = BoxCalibration(dx=0.1, dy=-0.2, scale=2.0)
    np.testing.assert_allclose(cal.apply(np.array([[0.0, 0.0, 10.0, 10.0]])),
                               [[-4.0, -7.0, 16.0, 13.0]])


@settings(max_examples=50, deadline=None)
@given(st.floats(-0.5, 0.5), st.floats(-0.5, 0.5), st.floats(0.2, 5.0),
       st.lists(st.tuples(st.floats(-500, 500), st.floats(-500, 500), st.floats(1, 400)),
                min_size=1, max_size=5))
def test_calibration_invert_undoes_apply_on_squares(dx, dy, scale, squares):
    cal = BoxCalibration(dx, dy, scale)
    boxes = np.array([[x, y, x + s, y + s] for x, y, s in squares])
    np.testing.assert_allclose(cal.apply(cal.invert(boxes)), boxes, atol=1e-9, rtol=1e-9)
    np.testing.assert_allclose(cal.invert(cal.apply(boxes)), boxes, atol=1e-9, rtol=1e-9)


def test_calibrated_boxes_match_landmark_boxes_on_training_faces(data_300w):
    faces = list_faces(data_300w, "train")[::100]  # 21 faces across afw, helen, lfpw
    detector = HaarFaceDetector()
    overlaps = []
    for f in faces:
        truth = np.array(gt_box(read_pts(f.pts).numpy()))
        boxes = np.array(detector.detect(decode_image(f.image))).reshape(-1, 4)
        overlaps.append(box_iou(boxes, truth).max(initial=0.0))
    overlaps = np.array(overlaps)
    assert (overlaps >= 0.5).mean() >= 0.8, overlaps
    assert np.median(overlaps) > 0.7, overlaps


def test_detector_finds_nothing_on_flat_grey():
    assert HaarFaceDetector().detect(np.full((200, 300, 3), 128, np.uint8)) == []


# --- prediction ----------------------------------------------------------------------------


def test_predict_from_landmark_boxes_equals_the_evaluation_pipeline(tiny_face_model):
    # frames cut around the true landmark boxes are the frames `evaluate` solves
    data = load_faces(SAMPLE_ROOT, "common", limit=3)
    truth = data.meta["points_image"].numpy()
    faces = predict_faces(tiny_face_model, data.meta["paths"],
                          boxes=[[gt_box(p)] for p in truth], iterations=2)
    got = np.array([f[0]["points"] for f in faces])
    theta = tiny_face_model.solve(data.inputs, iterations=2).theta.to(torch.float64)
    expected = frame_to_image(theta.reshape(3, -1, 2), data.meta["frame_to_image"]).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-3)  # px
    for f, p in zip(faces, truth):
        np.testing.assert_allclose(f[0]["box"], gt_box(p))


def test_predict_takes_paths_arrays_and_odd_formats_in_one_batch(tiny_face_model, tmp_path):
    rgb, pts = sample(0)
    Image.fromarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).save(tmp_path / "grey.png")
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    deep = rgb.astype(np.uint16) * 257
    inputs = [str(SAMPLES[0].image), tmp_path / "grey.png", rgba, deep, rgb[..., ::-1].copy()]
    out = predict_faces(tiny_face_model, inputs, iterations=1)
    assert len(out) == len(inputs)
    for faces in out:
        assert_faces(faces, 1)
    # the same pixels give the same answer, whatever their container
    for same in (out[2], out[3]):
        np.testing.assert_allclose(same[0]["points"], out[0][0]["points"], atol=1e-4)


def test_single_image_still_gives_one_list_per_image(tiny_face_model):
    rgb, pts = sample(1)
    out = predict_faces(tiny_face_model, rgb, boxes=[gt_box(pts)], iterations=1)
    assert len(out) == 1
    assert_faces(out[0], 1)


def test_an_image_without_a_face_gives_an_empty_list(tiny_face_model):
    out = predict_faces(tiny_face_model, [np.full((240, 320, 3), 128, np.uint8), sample(0)[0]],
                        iterations=1)
    assert out[0] == [] and len(out[1]) == 1


def test_tiny_and_huge_images(tiny_face_model):
    rgb, pts = sample(2)
    tiny = cv2.resize(rgb, (24, 24), interpolation=cv2.INTER_AREA)
    f_tiny = 24 / 320
    huge_side = 4480
    f_huge = huge_side / 320
    huge = cv2.resize(rgb, (huge_side, huge_side), interpolation=cv2.INTER_LINEAR)
    # pixel centres scale as x' = f x + (f - 1) / 2
    tiny_box = np.array(gt_box(pts)) * f_tiny + (f_tiny - 1) / 2
    out = predict_faces(tiny_face_model, [tiny, huge], boxes=[[tiny_box.tolist()], None],
                        iterations=1)
    assert_faces(out[0], 1)
    assert_faces(out[1], 1)
    # the huge image's face was found on a downscaled copy and reported in full-size px
    truth = np.array(gt_box(pts)) * f_huge + (f_huge - 1) / 2
    found = np.array(out[1][0]["box"])
    side = truth[2] - truth[0]
    assert np.abs(found - truth).max() < 0.2 * side, (found, truth)
    # the tiny image: detection runs on an enlarged copy and does not fail
    assert isinstance(predict_faces(tiny_face_model, tiny, iterations=1)[0], list)


def test_exif_rotated_photo_gives_points_in_the_displayed_orientation(tiny_face_model, tmp_path):
    rgb, pts = sample(3)
    exif = Image.Exif()
    exif[0x0112] = 8  # stored turned right; shown after a turn to the left
    Image.fromarray(np.rot90(rgb, -1)).save(tmp_path / "turned.png", exif=exif)
    box = [gt_box(pts)]
    turned = predict_faces(tiny_face_model, tmp_path / "turned.png", boxes=box, iterations=1)
    upright = predict_faces(tiny_face_model, rgb, boxes=box, iterations=1)
    np.testing.assert_allclose(turned[0][0]["points"], upright[0][0]["points"], atol=1e-4)


def test_bad_options_are_config_errors(tiny_face_model):
    rgb, pts = sample(0)
    with pytest.raises(ConfigError, match="2 lists for 1 images"):
        predict_faces(tiny_face_model, [rgb], boxes=[[gt_box(pts)], []])
    with pytest.raises(ConfigError, match="x1 > x0"):
        predict_faces(tiny_face_model, rgb, boxes=[[10, 10, 5, 20]])
    with pytest.raises(ConfigError, match="no detector"):
        predict_faces(tiny_face_model, rgb, detector=None)
    with pytest.raises(ConfigError, match="iterations must be >= 0"):
        predict_faces(tiny_face_model, rgb, iterations=-1)


def test_trained_solver_predict_delegates_to_the_face_problem(tiny_face_model):
    rgb, pts = sample(0)
    assert tiny_face_model.predict(rgb, boxes=[gt_box(pts)], iterations=1) == \
        predict_faces(tiny_face_model, rgb, boxes=[gt_box(pts)], iterations=1)


# --- accuracy: the real model ------------------------------------------------------------


def test_detected_faces_are_as_accurate_as_from_true_boxes(face_model):
    images = [decode_image(f.image) for f in SAMPLES]
    truth = np.stack([read_pts(f.pts).numpy() for f in SAMPLES])
    detected = predict_faces(face_model, images)
    boxed = predict_faces(face_model, images, boxes=[[gt_box(p)] for p in truth])
    found = [i for i, faces in enumerate(detected) if faces]
    assert len(found) >= 10  # the cascade misses a face or two of these 12
    # an image's detection may include a false one: take the face nearest the truth
    err_det = [min(nme(np.array(f["points"]), truth[i]) for f in detected[i]) for i in found]
    err_box = [nme(np.array(boxed[i][0]["points"]), truth[i]) for i in found]
    assert np.mean(err_det) < 1.3 * np.mean(err_box) + 0.01, (err_det, err_box)
    assert np.mean(err_box) < 0.08


def test_a_checkpoint_of_another_problem_is_refused_in_one_line(tmp_path):
    from selfiter.config import load_config
    from selfiter.training import train

    repo = SAMPLE_ROOT.parents[3]
    cfg = load_config(repo / "examples" / "curve_fit.yaml",
                      ["train.steps=2", "train.val_split=null", "problem.params.n_train=64",
                       "train.batch_size=8"])
    curve = load(train(cfg, tmp_path / "curve", progress=False))
    rgb, pts = sample(0)
    with pytest.raises(CheckpointError, match=r"holds a curve_fit/.* model; 68 face landmarks "
                                              r"need a face300w model"):
        predict_faces(curve, rgb, boxes=[gt_box(pts)])
