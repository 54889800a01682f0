"""Tracking through video: a synthetic clip with known points, the tracker, and ``selfiter track``."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from face_landmarks.cli_track import csv_header
from face_landmarks.data.frame import landmark_boxes
from face_landmarks.data.layout import SAMPLE_ROOT
from face_landmarks.detectors.haar import HaarFaceDetector
from face_landmarks.predict import predict_faces
from face_landmarks.tracking import FaceTracker
from selfiter.cli.main import main

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from track_synthetic import common_faces, frame_errors, make_sequence, read_video, write_video  # noqa: E402

#: two sample faces (both ship with the plugin), one per shot
FACES = ["296814969_3", "image_0001"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The synthetic clip as an MJPG file, its decoded frames, the truth and the cut."""
    frames, truth, starts = make_sequence(common_faces(SAMPLE_ROOT, FACES))
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    write_video(path, frames)
    decoded = read_video(path)
    assert decoded.shape == frames.shape  # MJPG round trip: every frame, full size
    return path, decoded, truth, starts[1]


def test_the_synthetic_truth_follows_the_face(clip):
    _, frames, truth, cut = clip
    # the shots really move, and the second face appears far from where the first was
    assert np.linalg.norm(truth[cut - 1].mean(0) - truth[0].mean(0)) > 60
    assert np.linalg.norm(truth[cut].mean(0) - truth[cut - 1].mean(0)) > 150
    # the face is where its points say: the calibrated detector's box sits on their box
    detector = HaarFaceDetector()
    for i in (0, cut - 1, cut, len(frames) - 1):
        truth_box = landmark_boxes(torch.as_tensor(truth[i]), 1.0).numpy()
        boxes = np.array(detector.detect(frames[i])).reshape(-1, 4)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        side = truth_box[2] - truth_box[0]
        offset = np.linalg.norm(centres - (truth_box[:2] + truth_box[2:]) / 2, axis=1).min()
        assert offset < 0.2 * side, (i, boxes, truth_box)


@pytest.mark.slow  # 30 frames tracked and 30 predicted with the LAN: 10 s on 2 idle cores, 50 s busy
def test_tracking_stays_as_good_as_per_image_and_recovers_after_the_cut(face_model, clip):
    _, frames, truth, cut = clip
    tracker = FaceTracker(face_model)
    steps = [tracker.update(f) for f in frames]
    tracked = np.array([s.points if s.points is not None else np.full((68, 2), np.nan) for s in steps])
    per_image = predict_faces(face_model, list(frames))
    single = np.array([f[0]["points"] if f else np.full((68, 2), np.nan) for f in per_image])
    err_track, err_image = frame_errors(tracked, truth), frame_errors(single, truth)
    report = "\n".join(f"{i}: track {100 * a:.2f}%  image {100 * b:.2f}%  detected {s.detected}"
                       for i, (a, b, s) in enumerate(zip(err_track, err_image, steps)))
    assert not np.isnan(err_track[:cut]).any(), report
    assert np.nanmean(err_track) <= 1.5 * np.nanmean(err_image) + 0.01, report
    # the cut is noticed within two frames and the new face is tracked from then on
    assert any(s.detected for s in steps[cut:cut + 3]), report
    normal = 1.5 * np.nanmedian(err_image[cut:]) + 0.02
    assert (err_track[cut + 3:] <= normal).all(), report


def test_lost_track_without_a_face_gives_no_points_then_detects_again(tiny_face_model, clip):
    _, frames, _, _ = clip
    tracker = FaceTracker(tiny_face_model, iterations=1)
    first = tracker.update(frames[0])
    assert first.detected and first.points.shape == (68, 2)
    blank = np.full_like(frames[0], 128)
    gone = tracker.update(blank)
    assert gone.points is None and gone.detected and np.isnan(gone.last_step)
    back = tracker.update(frames[1])
    assert back.detected and back.points is not None


def test_refit_from_the_previous_points_or_pose(tiny_face_model, clip):
    _, frames, _, _ = clip
    for start in ("points", "pose"):
        tracker = FaceTracker(tiny_face_model, iterations=0, start=start, min_similarity=-1)
        first = tracker.update(frames[0])
        second = tracker.update(frames[0])  # no solver step: the start itself comes back
        assert not second.detected
        if start == "points":
            np.testing.assert_allclose(second.points, first.points, atol=1e-6)
        else:  # same pose, the model's mean shape
            model = tiny_face_model.parameter_model
            s = model.fit(torch.from_numpy(second.points).reshape(1, -1))
            np.testing.assert_allclose(s[0, :model.k].numpy(), 0.0, atol=1e-6)
            s_first = model.fit(torch.from_numpy(first.points).reshape(1, -1))
            np.testing.assert_allclose(s[0, model.k:].numpy(), s_first[0, model.k:].numpy(),
                                       rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="start must be"):
        FaceTracker(tiny_face_model, start="middle")  # type: ignore[arg-type]


def test_track_writes_csv_and_annotated_video(tiny_face_checkpoint, clip, tmp_path, capsys):
    path, frames, _, _ = clip
    csv, out = tmp_path / "points.csv", tmp_path / "annotated.mp4"
    assert main(["track", str(path), "--model", str(tiny_face_checkpoint), "--csv", str(csv),
                 "--out", str(out), "--iterations", "1"]) == 0
    lines = csv.read_text().splitlines()
    assert lines[0] == csv_header() and lines[0].split(",")[1:3] == ["x1", "y1"]
    assert len(lines) == 1 + len(frames)
    for i, line in enumerate(lines[1:]):
        cells = line.split(",")
        assert len(cells) == 137 and cells[0] == str(i)
        assert np.isfinite([float(c) for c in cells[1:]]).all()
    written = read_video(out)
    assert written.shape == frames.shape
    assert "frames/s" in capsys.readouterr().err


def test_frames_without_a_face_have_empty_csv_cells(tiny_face_checkpoint, tmp_path, capsys):
    video = tmp_path / "grey.avi"
    write_video(video, np.full((3, 120, 160, 3), 128, np.uint8))
    csv = tmp_path / "grey.csv"
    assert main(["track", str(video), "--model", str(tiny_face_checkpoint), "--csv", str(csv)]) == 1
    rows = csv.read_text().splitlines()[1:]
    assert rows == [f"{i}" + "," * 136 for i in range(3)]
    assert "3 frames, 0 with a face" in capsys.readouterr().err


@pytest.mark.parametrize("make, extra, message", [
    (None, [], "no such video file"),
    ("text", [], "cannot open this video"),
    ("video", ["--out", "x.mkv"], "expected a .mp4 or .avi file"),
    ("video", ["--lost-step", "0"], "lost_step > 0"),
])
def test_track_usage_errors_exit_2(tiny_face_checkpoint, tmp_path, capsys, make, extra, message):
    video = tmp_path / "in.avi"
    if make == "text":
        video.write_text("not a video\n")
    elif make == "video":
        write_video(video, np.zeros((2, 48, 64, 3), np.uint8))
    extra = [str(tmp_path / a) if a.endswith(".mkv") else a for a in extra]
    assert main(["track", str(video), "--model", str(tiny_face_checkpoint), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not (tmp_path / "x.mkv").exists()


def test_annotated_frames_show_the_points(tiny_face_checkpoint, clip, tmp_path):
    path, frames, _, _ = clip
    out = tmp_path / "a.avi"
    assert main(["track", str(path), "--model", str(tiny_face_checkpoint), "--out", str(out),
                 "--iterations", "0"]) == 0
    first = cv2.cvtColor(read_video(out)[0], cv2.COLOR_RGB2BGR)
    assert np.abs(first.astype(int) - frames[0][..., ::-1]).max() > 100  # drawn in colour
