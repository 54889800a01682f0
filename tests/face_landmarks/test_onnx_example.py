"""The documented way to run the exported face solver without selfiter
(docs/examples/onnx_landmarks.py: numpy, OpenCV, onnxruntime) gives the points
``predict_faces`` gives."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from face_landmarks.data.layout import SAMPLE_ROOT, list_faces
from face_landmarks.data.pts import read_pts
from face_landmarks.predict import predict_faces, read_image
from selfiter.api import load
from selfiter.export import export

from .conftest import REPO

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                                reason="onnxruntime is not installed (pip install -e '.[onnx]')")


def test_the_documented_onnx_pipeline_gives_the_points_of_predict(tiny_encoded_checkpoint, tmp_path,
                                                                   monkeypatch):
    import onnxruntime

    spec = importlib.util.spec_from_file_location("onnx_landmarks",
                                                  REPO / "docs" / "examples" / "onnx_landmarks.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    model = load(tiny_encoded_checkpoint)
    monkeypatch.setattr(example, "FRAME", model.problem.frame_size)
    monkeypatch.setattr(example, "BOX_SCALE", model.problem.box_scale)
    faces = list_faces(SAMPLE_ROOT, "common")[:3]
    frames = model.problem.load("common").inputs[:2]
    path = export(model, tmp_path / "face.onnx", frames, "onnx", "solver", 2, "legacy").path
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theta0 = model.initial_theta(1).numpy()
    for face in faces:
        rgb, pts = read_image(face.image), read_pts(face.pts).numpy()
        box = (*pts.min(0), *pts.max(0))
        ours = example.landmarks(session, theta0, rgb, box)
        ref = np.array(predict_faces(model, rgb, boxes=[box], iterations=2)[0][0]["points"])
        np.testing.assert_allclose(ours, ref, atol=1e-2)
