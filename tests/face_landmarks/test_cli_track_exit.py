"""``selfiter track`` exit status: 1 as soon as some frame has no face, documented in its help."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from face_landmarks.data.layout import SAMPLE_ROOT, list_faces
from face_landmarks.detectors import DEFAULT_DETECTOR
from face_landmarks.predict import read_image
from selfiter.cli.main import main

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from track_synthetic import write_video  # noqa: E402


def test_a_video_with_some_frames_without_a_face_exits_1(tiny_face_checkpoint, tmp_path, capsys):
    face = read_image(list_faces(SAMPLE_ROOT, "common")[0].image)  # 320 x 320, Haar finds it
    grey = np.full_like(face, 128)
    video = tmp_path / "mixed.avi"
    write_video(video, np.stack([face, face, grey]))
    csv = tmp_path / "mixed.csv"
    assert main(["track", str(video), "--model", str(tiny_face_checkpoint), "--csv", str(csv),
                 "--iterations", "0"]) == 1
    err = capsys.readouterr().err
    assert f"3 frames, 2 with a face, 1 without (no face found by detector '{DEFAULT_DETECTOR}')" in err
    rows = csv.read_text().splitlines()[1:]
    assert rows[2] == "2" + "," * 136 and rows[0].count(",") == 136 and ",," not in rows[0]


def test_the_exit_codes_are_in_the_help_and_the_cli_reference(capsys):
    with pytest.raises(SystemExit):
        main(["track", "--help"])
    text = capsys.readouterr().out
    reference = (REPO / "docs" / "cli.md").read_text()
    for line in ("0  every frame has a face", "1  some frames have no face",
                 "2  bad usage, or a video that cannot be opened or decoded"):
        assert line in text and line in reference
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "3    internal error" in top and "2    bad usage, config or data" in top
