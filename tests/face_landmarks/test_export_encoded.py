"""The encoded-grid face solver exported whole (the encoder once, then K steps of grid
sampling and the head) runs in onnxruntime like in PyTorch."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from face_landmarks.data.dataset import load_faces
from face_landmarks.data.layout import SAMPLE_ROOT
from selfiter.api import load
from selfiter.cli.main import main
from selfiter.export import run_onnx

from .conftest import ENCODED_CONFIG, TINY_ENCODED


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                    reason="onnxruntime is not installed (pip install -e '.[onnx]')")
def test_exported_encoded_solver_matches_pytorch(tiny_encoded_checkpoint, tmp_path, capsys):
    out = tmp_path / "face.onnx"
    exporter = "dynamo" if importlib.util.find_spec("onnxscript") else "legacy"
    assert main(["export", str(ENCODED_CONFIG), "--checkpoint", str(tiny_encoded_checkpoint),
                 "--format", "onnx", "-o", str(out), "--iterations", "3",
                 "--exporter", exporter, "--set", *TINY_ENCODED]) == 0
    printed = capsys.readouterr().out
    assert float(printed.split("PyTorch| on 2 samples: ")[1].split()[0]) < 1e-3  # px
    model = load(tiny_encoded_checkpoint)
    faces = load_faces(SAMPLE_ROOT, "common", frame_size=32, limit=5)  # batch 5: traced with 2
    theta0 = model.initial_theta(5)
    theta, trajectory = run_onnx(out, (faces.inputs, theta0))
    ref = model.solve(faces.inputs, theta0, iterations=3)
    assert trajectory.shape == (4, 5, 136)
    np.testing.assert_allclose(trajectory, ref.trajectory.numpy(), atol=1e-3)
    np.testing.assert_allclose(theta, ref.theta.numpy(), atol=1e-3)


def test_the_regressor_alone_of_a_learned_extractor_is_refused(tiny_encoded_checkpoint, tmp_path,
                                                               capsys):
    code = main(["export", str(ENCODED_CONFIG), "--checkpoint", str(tiny_encoded_checkpoint),
                 "--format", "torchscript", "--part", "regressor", "-o", str(tmp_path / "r.pt"),
                 "--set", *TINY_ENCODED])
    assert code == 2
    assert "learned weights of its own; export the solver instead" in capsys.readouterr().err


def test_a_checkpoint_of_another_model_is_refused_in_one_line(tiny_encoded_checkpoint,
                                                              tiny_face_checkpoint, capsys):
    from .conftest import FACE_CONFIG

    code = main(["evaluate", str(FACE_CONFIG), "--checkpoint", str(tiny_encoded_checkpoint)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "holds a face300w/encoded_grid/landmark_mlp model" in err
    assert "asks for face300w/patches/lan" in err


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                    reason="onnxruntime is not installed (pip install -e '.[onnx]')")
def test_evaluate_and_landmarks_through_onnxruntime_match_torch(tiny_encoded_checkpoint, tmp_path,
                                                                monkeypatch, capsys):
    monkeypatch.setenv("SELFITER_CACHE", str(tmp_path / "cache"))
    scores = {}
    for runtime in ("torch", "onnxruntime"):
        out = tmp_path / f"{runtime}.json"
        assert main(["evaluate", str(ENCODED_CONFIG), "--checkpoint", str(tiny_encoded_checkpoint),
                     "--runtime", runtime, "--json", str(out), "--set", *TINY_ENCODED]) == 0
        import json

        scores[runtime] = json.loads(out.read_text())["per_iteration"]
    for a, b in zip(scores["torch"], scores["onnxruntime"]):
        assert a["nme_io"] == pytest.approx(b["nme_io"], abs=1e-3)
    image = sorted(SAMPLE_ROOT.rglob("*.jpg"))[0]
    points = {}
    for runtime in ("torch", "onnxruntime"):
        out = tmp_path / f"{runtime}-points.json"
        main(["landmarks", str(image), "--model", str(tiny_encoded_checkpoint), "--runtime",
              runtime, "--json", str(out)])
        import json

        points[runtime] = json.loads(out.read_text())
    assert points["torch"].keys() == points["onnxruntime"].keys()
    assert sum(len(faces) for faces in points["torch"].values()) >= 1
    for key, faces in points["torch"].items():
        for fa, fb in zip(faces, points["onnxruntime"][key]):
            np.testing.assert_allclose(fa["points"], fb["points"], atol=1e-2)
