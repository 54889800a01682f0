"""Every bundled detector: finds real faces, keeps to min_size, nothing on a blank image,
its shipped calibration, a missing package named with its pip command, BlazeFace's tiles."""

from __future__ import annotations

import importlib.util
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from face_landmarks.data.dataset import decode_image
from face_landmarks.data.frame import landmark_boxes
from face_landmarks.data.layout import SAMPLE_ROOT, list_faces
from face_landmarks.data.pts import read_pts
from face_landmarks.detectors import DEFAULT_DETECTOR, INSTALL
from face_landmarks.detectors.calibration import (
    BoxCalibration, box_iou, calibration_file, greedy_match)
from face_landmarks.predict import make_detector
from selfiter import plugins
from selfiter.errors import ConfigError

SAMPLES = list_faces(SAMPLE_ROOT, "common")  # 12 faces, 320 x 320 crops
#: registered name -> the module it needs
NEEDS = {"haar": "cv2", "dlib_hog": "dlib", "dlib_mmod": "dlib", "blazeface_short": "mediapipe",
         "blazeface_full": "mediapipe", "mtcnn": "mtcnn"}


def sample(i: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample face ``i``: its RGB image and its landmark box ``(4,)``."""
    return (decode_image(SAMPLES[i].image),
            landmark_boxes(read_pts(SAMPLES[i].pts), 1.0).numpy())


def build(name: str, **params):
    """The detector ``name``, skipped (saying what to install) where its package is missing."""
    # found, not imported: the mtcnn package's own code imports TensorFlow (only its weights are used)
    if importlib.util.find_spec(NEEDS[name]) is None:
        pytest.skip(f"detector {name} needs {NEEDS[name]}: {INSTALL[name]}")
    if name == "dlib_mmod" and importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip(f"dlib_mmod needs face_recognition_models: {INSTALL[name]}")
    return plugins.get("detector", name).obj(**params)


@pytest.fixture(scope="module", params=sorted(NEEDS))
def detector(request):
    return build(request.param)


def test_every_detector_is_registered_and_the_default_is_one_of_them():
    assert set(NEEDS) <= set(plugins.components("detector"))
    assert DEFAULT_DETECTOR in NEEDS and set(INSTALL) == set(NEEDS)


def test_finds_the_face_of_real_sample_photos(detector):
    hits = 0
    for i in (0, 1, 2):
        image, truth = sample(i)
        boxes = np.array(detector.detect(image)).reshape(-1, 4)
        hits += box_iou(boxes, truth).max(initial=0.0) >= 0.5
    assert hits >= 2, detector.name


def test_raw_detections_are_what_detect_calibrates(detector):
    image, _ = sample(0)
    raw, scores = detector.raw_detections(image)
    assert raw.shape[1:] == (4,) and scores.shape == (len(raw),) and len(raw) >= 1
    np.testing.assert_allclose(detector.calibration.apply(raw), np.array(detector.detect(image)))
    np.testing.assert_array_equal(detector.raw_boxes(image), raw)
    areas = (raw[:, 2] - raw[:, 0]) * (raw[:, 3] - raw[:, 1])
    assert (np.diff(areas) <= 0).all()  # largest first


def test_nothing_on_a_blank_image(detector):
    assert detector.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    assert detector.detect(np.zeros((480, 640), np.uint8)) == []  # grey input too


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_min_size_is_the_least_side_returned(name):
    image, truth = sample(1)
    side = truth[2] - truth[0]  # about 200 px
    small = build(name, min_size=0.5 * side)
    boxes = np.array(small.detect(image)).reshape(-1, 4)
    assert len(boxes) and (boxes[:, 2] - boxes[:, 0] >= 0.5 * side - 1e-9).all()
    assert build(name, min_size=1.5 * side).detect(image) == []


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_the_shipped_calibration_loads_and_is_plausible(name):
    cal = BoxCalibration.load(calibration_file(name))
    assert cal != BoxCalibration()
    assert abs(cal.dx) < 0.2 and abs(cal.dy) < 0.4 and 0.6 < cal.scale < 1.8
    import json

    data = json.loads(calibration_file(name).read_text())
    assert data["detector"] == name and "300-W train" in data["fitted_on"]


def test_calibration_json_round_trip(tmp_path):
    cal = BoxCalibration(0.0125, -0.25, 1.375)
    cal.save(tmp_path / "c.json", fitted_on="test", params={"min_size": 80})
    assert BoxCalibration.load(tmp_path / "c.json") == cal
    (tmp_path / "bad.json").write_text('{"dx": 0, "dy": 0, "scale": -1}')
    with pytest.raises(ConfigError, match="scale > 0"):
        BoxCalibration.load(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="calibrate_detector.py --detector NAME"):
        BoxCalibration.load(tmp_path / "missing.json")


def test_calibration_fit_recovers_a_known_offset():
    truth = BoxCalibration(0.05, 0.15, 0.9)
    rng = np.random.default_rng(0)
    xy, s = rng.uniform(0, 500, (40, 2)), rng.uniform(30, 300, (40, 1))
    raw = np.hstack([xy, xy + s])
    fitted = BoxCalibration.fit(truth.apply(raw), raw)
    np.testing.assert_allclose([fitted.dx, fitted.dy, fitted.scale], [0.05, 0.15, 0.9])


def test_greedy_matching_is_one_to_one_best_pairs_first():
    truth = np.array([[0, 0, 10, 10], [8, 0, 18, 10], [100, 100, 110, 110]], float)
    boxes = np.array([[1, 0, 11, 10], [9, 0, 19, 10], [50, 50, 60, 60]], float)
    match, iou = greedy_match(truth, boxes, 0.5)
    assert match.tolist() == [0, 1, -1] and iou[2] == 0
    # one box, two faces it overlaps: only the better pair counts
    match, _ = greedy_match(truth[:2], boxes[:1], 0.1)
    assert match.tolist() == [0, -1]


def test_a_missing_package_is_one_line_naming_the_pip_command(monkeypatch, tiny_face_checkpoint,
                                                             capsys):
    from selfiter.cli.main import main

    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib now raises ImportError
    make_detector.cache_clear()
    with pytest.raises(ConfigError, match=r"detector 'dlib_hog' needs .*pip install "
                                          r"'selfiter\[detectors\]'"):
        plugins.get("detector", "dlib_hog").obj()
    assert main(["landmarks", str(SAMPLES[0].image), "--model", str(tiny_face_checkpoint),
                 "--detector", "dlib_mmod"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'selfiter[detectors]'" in err
    make_detector.cache_clear()


def test_make_detector_refuses_a_parameter_the_detector_lacks():
    with pytest.raises(ConfigError, match="detector 'haar' takes no colour parameter"):
        make_detector("haar", colour=True)


# --- BlazeFace's tiles -------------------------------------------------------------------------


def test_tile_starts_cover_the_length_flush_with_both_ends():
    from face_landmarks.detectors.blazeface import tile_starts

    for length, tile, stride in ((1920, 222, 126.0), (1080, 500, 308.0), (300, 500, 250.0)):
        starts = tile_starts(length, tile, stride)
        assert starts[0] == 0 and starts[-1] == max(0, length - tile)
        assert (np.diff(starts) <= stride + 1).all()


def test_suppression_keeps_the_best_of_overlapping_boxes():
    from face_landmarks.detectors.calibration import suppress

    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [2, 2, 6, 6], [50, 50, 60, 60]], float)
    # BlazeFace's rule: [2] scores best and stays; [1] overlaps it little (IoU 0.16) and
    # stays; [0] overlaps [1] (IoU 0.68) and goes; [3] is elsewhere
    assert suppress(boxes, np.array([0.6, 0.9, 0.95, 0.5]), 0.3, inside=0.6).tolist() == [2, 1, 3]
    # a box lying inside a better one goes, whatever their IoU (a face cut by a tile)
    assert suppress(boxes[[0, 2]], np.array([0.9, 0.5]), 0.3, inside=0.6).tolist() == [0]
    with pytest.raises(ValueError, match="over must be 'union' or 'min'"):
        suppress(boxes, np.ones(4), 0.3, over="max")


def test_tile_levels_shrink_to_the_least_face():
    pytest.importorskip("mediapipe", reason=f"BlazeFace needs mediapipe: {INSTALL['blazeface_short']}")
    for name in ("blazeface_short", "blazeface_full"):
        det = build(name)
        sides = det.tile_sides(1080, 1920, 40.0)
        assert sides[0] == pytest.approx(1920 / min(1.0, det.most))
        assert sides[-1] == pytest.approx(40.0 / det.least)
        ratios = np.array(sides[:-1]) / np.array(sides[1:])
        assert (ratios > 1).all() and (ratios <= det.level_step + 1e-9).all()
        det.tile = False
        assert det.tile_sides(1080, 1920, 40.0) == [sides[0]]


@pytest.mark.parametrize("name", ["blazeface_short", "blazeface_full"])
def test_tiles_find_a_small_face_in_a_large_photo(name):
    image, truth = sample(0)
    f = 70 / (truth[2] - truth[0])  # a 70 px face
    small = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    canvas = np.full((1080, 1920, 3), 90, np.uint8)
    y, x = 600, 1300
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    expected = truth * f + (f - 1) / 2 + [x, y, x, y]
    tiled = np.array(build(name).detect(canvas)).reshape(-1, 4)
    assert box_iou(tiled, expected).max(initial=0.0) >= 0.5
    assert build(name, tile=False).detect(canvas) == []


def test_the_default_detector_is_the_one_predict_uses():
    import inspect

    from face_landmarks.predict import predict_faces

    assert inspect.signature(predict_faces).parameters["detector"].default == DEFAULT_DETECTOR
