"""``selfiter landmarks``: folders, JSON, overlays, and a batch that survives bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from face_landmarks.data.layout import SAMPLE_ROOT, list_faces
from face_landmarks.detectors import DEFAULT_DETECTOR
from face_landmarks.predict import make_detector
from selfiter.cli.main import main
from selfiter.config import load_config
from selfiter.training import train

REPO = Path(__file__).resolve().parents[2]

SAMPLES = list_faces(SAMPLE_ROOT, "common")


@pytest.fixture
def photos(tmp_path):
    """A folder of 2 sample photos, one more in a sub-folder, and one bad file of each kind."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    shutil.copy(SAMPLES[0].image, root / "a.jpg")
    shutil.copy(SAMPLES[7].image, root / "b.jpg")
    shutil.copy(SAMPLES[3].image, root / "sub" / "c.jpg")
    (root / "notes.jpg").write_text("not an image\n")
    (root / "empty.jpg").write_bytes(b"")
    cv2.imwrite(str(root / "grey.png"), np.full((240, 320), 128, np.uint8))
    (root / "readme.txt").write_text("skipped: not an image suffix\n")
    return root


def test_a_batch_goes_on_past_bad_files_and_reports_each(tiny_face_checkpoint, photos, tmp_path,
                                                         capsys):
    out_json, overlays = tmp_path / "points.json", tmp_path / "overlays"
    missing = tmp_path / "nowhere.jpg"
    code = main(["landmarks", str(photos), str(missing), "--model", str(tiny_face_checkpoint),
                 "--json", str(out_json), "--out", str(overlays), "--iterations", "1"])
    assert code == 1
    err = capsys.readouterr().err
    lines = err.splitlines()

    def line_of(name: str) -> str:
        hits = [ln for ln in lines if name in ln and "landmarks:" not in ln]
        assert len(hits) == 1, (name, err)
        return hits[0]

    assert "no such file or folder" in line_of("nowhere.jpg")
    assert "not a readable image" in line_of("notes.jpg")
    assert "not a readable image" in line_of("empty.jpg")
    assert f"no face found by detector '{DEFAULT_DETECTOR}' (320 x 240 px" in line_of("grey.png")
    assert "readme.txt" not in err
    assert ("landmarks: 4 image(s) read, 3 face(s); 3 input(s) not read, 1 image(s) without a "
            "face (listed above)") in lines[-1]

    results = json.loads(out_json.read_text())
    names = {str(photos / n): n for n in ("a.jpg", "b.jpg", "sub/c.jpg", "grey.png")}
    assert set(results) == set(names)
    assert results[str(photos / "grey.png")] == []
    for path in names:
        if not path.endswith("grey.png"):
            (face,) = results[path]
            assert len(face["box"]) == 4 and np.array(face["points"]).shape == (68, 2)
    # one overlay per readable image, in the folder's layout, full size
    for rel in ("a.png", "b.png", "sub/c.png", "grey.png"):
        overlay = cv2.imread(str(overlays / rel))
        assert overlay is not None and overlay.shape[:2] in ((320, 320), (240, 320)), rel


def test_json_goes_to_stdout_and_exit_is_0_when_all_is_well(tiny_face_checkpoint, capsys):
    paths = [str(SAMPLES[0].image), str(SAMPLES[1].image)]
    assert main(["landmarks", *paths, "--model", str(tiny_face_checkpoint),
                 "--iterations", "1"]) == 0
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert list(results) == paths and all(len(v) == 1 for v in results.values())
    assert "2 face(s)" in captured.err and "problem" not in captured.err


def test_same_named_files_get_separate_overlays(tiny_face_checkpoint, tmp_path):
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        shutil.copy(SAMPLES[0].image, tmp_path / d / "face.jpg")
    assert main(["landmarks", str(tmp_path / "x" / "face.jpg"), str(tmp_path / "y" / "face.jpg"),
                 "--model", str(tiny_face_checkpoint), "--out", str(tmp_path / "o"),
                 "--json", str(tmp_path / "p.json"), "--iterations", "0"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["face-2.png", "face.png"]


@pytest.mark.parametrize("extra, message", [
    (["--model", "no_such_model"], "neither a checkpoint file nor a pretrained model name"),
    (["--iterations", "-1"], "iterations must be >= 0"),
    (["--device", "cuda"], "CUDA is not available"),
    (["--batch", "0"], "--batch must be >= 1"),
    (["--detector", "nope"], "no detector named 'nope'"),
    (["--box", "1,2,3"], "--box '1,2,3': expected four numbers X0,Y0,X1,Y1"),
    (["--box", "a,b,c,d"], "--box 'a,b,c,d': expected four numbers"),
    (["--box", "0,0,10,inf"], "expected four numbers"),
    (["--box", "0,0,10,10", "--box", "10,10,5,20"], "--box '10,10,5,20': needs X1 > X0 and Y1 > Y0"),
    (["--min-face", "0"], "--min-face must be > 0 px"),
    (["--min-face", "40", "--box", "0,0,10,10"], "with --box no detector runs"),
])
def test_usage_errors_exit_2_with_one_line(tiny_face_checkpoint, capsys, extra, message):
    args = ["landmarks", str(SAMPLES[0].image), "--model", str(tiny_face_checkpoint), *extra]
    if extra[0] == "--device" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_curve_model_is_refused(tmp_path, capsys):
    ckpt = train(load_config(REPO / "examples" / "curve_fit.yaml",
                             ["train.steps=1", "train.val_split=null", "train.device=cpu"]),
                 tmp_path / "run", progress=False)
    assert main(["landmarks", str(SAMPLES[0].image), "--model", str(ckpt)]) == 2
    assert "not a face landmark model" in capsys.readouterr().err


def test_every_input_unreadable_still_writes_the_json_and_exits_1(tiny_face_checkpoint, tmp_path,
                                                                  capsys):
    bad = [tmp_path / "a.jpg", tmp_path / "b.png"]
    bad[0].write_text("not an image\n")
    bad[1].write_bytes(b"")
    out_json = tmp_path / "points.json"
    code = main(["landmarks", *map(str, bad), str(tmp_path / "gone.jpg"), "--model",
                 str(tiny_face_checkpoint), "--json", str(out_json), "--batch", "2"])
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert "internal error" not in "\n".join(err)
    for name in ("a.jpg", "b.png", "gone.jpg"):
        assert len([ln for ln in err if name in ln]) == 1, (name, err)
    assert json.loads(out_json.read_text()) == {}
    assert err[-1].startswith("landmarks: 0 image(s) read, 0 face(s); 3 input(s) not read")


def test_an_image_without_a_face_exits_1_with_one_clear_line(tiny_face_checkpoint, tmp_path,
                                                             capsys):
    grey = tmp_path / "wall.png"
    cv2.imwrite(str(grey), np.full((90, 120), 128, np.uint8))
    assert main(["landmarks", str(grey), str(SAMPLES[0].image), "--model",
                 str(tiny_face_checkpoint), "--iterations", "0"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)[str(grey)] == []
    (line,) = [ln for ln in captured.err.splitlines() if "wall.png" in ln]
    least = make_detector(DEFAULT_DETECTOR).min_size
    assert line == (f"{grey}: no face found by detector '{DEFAULT_DETECTOR}' (120 x 90 px, "
                    f"least face {least:g} px: "
                    "see --min-face; listed in the JSON with no faces)")


def test_the_exit_codes_are_in_the_help_and_the_cli_reference(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["landmarks", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    reference = (REPO / "docs" / "cli.md").read_text()
    for line in ("0  every input was read and every image has at least one face",
                 "1  some inputs could not be read or have no face",
                 "2  bad usage"):
        assert line in text and line in reference


def landmark_box(i: int) -> list[float]:
    from face_landmarks.data.frame import landmark_boxes
    from face_landmarks.data.pts import read_pts

    return landmark_boxes(read_pts(SAMPLES[i].pts), 1.0).tolist()


def test_boxes_given_with_box_replace_the_detector_on_every_image(tiny_face_checkpoint, tmp_path,
                                                                  capsys):
    wall = tmp_path / "wall.png"  # no face a detector would find
    cv2.imwrite(str(wall), np.full((240, 320), 128, np.uint8))
    boxes = [landmark_box(0), [10.0, 20.0, 110.5, 120.5]]
    args = ["landmarks", str(SAMPLES[0].image), str(wall), "--model", str(tiny_face_checkpoint),
            "--iterations", "0"]
    for b in boxes:
        args += ["--box", ",".join(map(repr, b))]
    assert main(args) == 0
    results = json.loads(capsys.readouterr().out)
    assert list(results) == [str(SAMPLES[0].image), str(wall)]
    for faces in results.values():
        np.testing.assert_allclose([f["box"] for f in faces], boxes)
        assert all(np.array(f["points"]).shape == (68, 2) for f in faces)


def test_min_face_is_the_least_face_the_detector_looks_for(tiny_face_checkpoint, capsys):
    photo = str(SAMPLES[0].image)  # its face: a landmark box of about 200 px
    base = ["landmarks", photo, "--model", str(tiny_face_checkpoint), "--iterations", "0"]
    assert main([*base, "--min-face", "400"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {photo: []}
    (line,) = [ln for ln in captured.err.splitlines() if photo in ln]
    assert (f"no face found by detector '{DEFAULT_DETECTOR}' (320 x 320 px, least face 400 px: "
            "see --min-face") in line
    assert main([*base, "--min-face", "120"]) == 0
    (face,) = json.loads(capsys.readouterr().out)[photo]
    assert face["box"][2] - face["box"][0] >= 120
