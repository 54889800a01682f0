"""The face solver exported whole (patches by ``grid_sample``, the LAN, K steps) runs in
onnxruntime like in PyTorch."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from face_landmarks.data.dataset import load_faces
from face_landmarks.data.layout import SAMPLE_ROOT
from selfiter.cli.main import main
from selfiter.export import run_onnx

from .conftest import FACE_CONFIG


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                    reason="onnxruntime is not installed (pip install -e '.[onnx]')")
def test_exported_lan_solver_matches_pytorch(tiny_face_checkpoint, tiny_face_model, tmp_path, capsys):
    out = tmp_path / "face.onnx"
    exporter = "dynamo" if importlib.util.find_spec("onnxscript") else "legacy"
    assert main(["export", str(FACE_CONFIG), "--checkpoint", str(tiny_face_checkpoint),
                 "--format", "onnx", "-o", str(out), "--iterations", "2",
                 "--exporter", exporter]) == 0
    printed = capsys.readouterr().out
    assert float(printed.split("PyTorch| on 2 samples: ")[1].split()[0]) < 1e-3  # px
    faces = load_faces(SAMPLE_ROOT, "common", limit=3)  # batch 3: traced with 2
    theta0 = tiny_face_model.initial_theta(3)
    theta, trajectory = run_onnx(out, (faces.inputs, theta0))
    ref = tiny_face_model.solve(faces.inputs, theta0, iterations=2)
    assert trajectory.shape == (3, 3, 136)
    # float32 through 68 convolutions and two grid_samples: agreement to a thousandth of a px
    np.testing.assert_allclose(trajectory, ref.trajectory.numpy(), atol=1e-3)
    np.testing.assert_allclose(theta, ref.theta.numpy(), atol=1e-3)
