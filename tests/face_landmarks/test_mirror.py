"""The mirror view of a face frame (``solver.tta``): its laws, and what averaging gains."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from face_landmarks.data.dataset import load_faces
from face_landmarks.metrics import face_metrics
from face_landmarks.mirror import MIRROR_68, MirrorView, mirror_points
from face_landmarks.predict import predict_faces, read_image


@settings(max_examples=50)
@given(st.integers(1, 5), st.integers(2, 300), st.integers(0, 2**31 - 1),
       st.sampled_from([torch.float32, torch.float64]))
def test_the_mirror_view_is_its_own_inverse_and_keeps_the_row_of_the_face(b, width, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(b, 136, generator=g, dtype=dtype) * width
    view = MirrorView(width)
    there = view.theta(theta)
    tol = dict(atol=4 * width * torch.finfo(dtype).eps, rtol=0)  # x -> w - 1 - x rounds at w
    assert_close(view.theta_back(there), theta, **tol)
    pts, moved = theta.reshape(b, 68, 2), there.reshape(b, 68, 2)
    # point i of the mirror is point MIRROR_68[i] of the face, at x -> width - 1 - x
    assert_close(moved[:, :, 0], width - 1 - pts[:, list(MIRROR_68), 0], **tol)
    assert torch.equal(moved[:, :, 1], pts[:, list(MIRROR_68), 1])
    images = torch.randint(0, 256, (b, 3, 4, width), generator=g, dtype=torch.uint8)
    assert torch.equal(view.inputs(view.inputs(images)), images)


def test_a_mirrored_frame_has_the_mirrored_points_of_the_real_face(data_300w):
    faces = load_faces(data_300w, "common", limit=4)
    w = faces.inputs.shape[-1]
    flipped = MirrorView(w).inputs(faces.inputs)
    # the grey level under each true point of the flipped frame is that under the
    # matching point of the original (nearest pixel: both positions are the same pixel)
    there = mirror_points(faces.theta_gt, w).reshape(4, 68, 2).round().long().clamp(0, w - 1)
    here = faces.theta_gt.reshape(4, 68, 2)[:, list(MIRROR_68)]
    here = torch.stack((w - 1 - here[..., 0], here[..., 1]), -1).round().long().clamp(0, w - 1)
    assert torch.equal(there, here)
    rows = torch.arange(4)[:, None]
    assert torch.equal(flipped[rows, :, there[..., 1], there[..., 0]],
                       faces.inputs[rows, :, there[..., 1], w - 1 - there[..., 0]])


def test_averaging_with_the_mirror_lowers_the_bundled_model_error(face_model, data_300w):
    faces = load_faces(data_300w, "common", face_model.problem.frame_size,
                       face_model.problem.box_scale, limit=160)
    plain = face_metrics(face_model.solve(faces.inputs).theta, faces.theta_gt)
    averaged = face_metrics(face_model.solve(faces.inputs, tta=True).theta, faces.theta_gt)
    assert averaged["nme_io"] < plain["nme_io"]
    assert averaged["nme_io_51"] < plain["nme_io_51"]


def test_predict_with_tta_moves_the_points_towards_the_mirror_solve(face_model, data_300w):
    faces = load_faces(data_300w, "common", limit=2)
    images = [read_image(p) for p in faces.meta["paths"]]
    truth = faces.meta["points_image"]
    boxes = [[[float(t[:, 0].min()), float(t[:, 1].min()), float(t[:, 0].max()),
               float(t[:, 1].max())]] for t in truth]
    plain = predict_faces(face_model, images, boxes=boxes)
    averaged = predict_faces(face_model, images, boxes=boxes, tta=True)
    for p, a in zip(plain, averaged):
        assert len(p) == len(a) == 1
        assert torch.tensor(p[0]["points"]).shape == (68, 2)
        assert not torch.allclose(torch.tensor(p[0]["points"]), torch.tensor(a[0]["points"]))
