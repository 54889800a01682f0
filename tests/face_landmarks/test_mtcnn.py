"""MTCNN's pieces, each against PyTorch's own op or the rule it stands for: suppression,
crops, peaks, the channels-last pooling and PReLU, P-Net's folded classifier, the pyramid,
the precisions."""

from __future__ import annotations

import functools
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from face_landmarks.detectors.calibration import box_iou, suppress
from selfiter.errors import ConfigError
from tests.face_landmarks.test_detectors import build, sample

boxes_st = st.lists(st.tuples(st.floats(0, 200), st.floats(0, 200), st.floats(2, 80),
                              st.floats(2, 80), st.floats(0, 1)), min_size=1, max_size=30)


@given(boxes_st, st.floats(0.1, 0.9), st.sampled_from(["union", "min"]))
def test_mtcnn_nms_keeps_apart_and_each_dropped_box_has_a_better_keeper(rows, iou, mode):
    import torch

    from face_landmarks.detectors.mtcnn import nms

    a = torch.tensor(rows, dtype=torch.float64)
    boxes = torch.cat([a[:, :2], a[:, :2] + a[:, 2:4]], 1)
    scores = a[:, 4]
    keep = nms(boxes, scores, iou, mode).tolist()

    def overlap(i, j):
        lo, hi = torch.maximum(boxes[i, :2], boxes[j, :2]), torch.minimum(boxes[i, 2:], boxes[j, 2:])
        inter = (hi - lo).clamp_min(0).prod().item()
        ai, aj = [(boxes[k, 2:] - boxes[k, :2]).prod().item() for k in (i, j)]
        return inter / (min(ai, aj) if mode == "min" else ai + aj - inter)

    assert len(set(keep)) == len(keep) and len(keep) >= 1
    assert all(overlap(i, j) <= iou + 1e-9 for i in keep for j in keep if i < j)
    order = sorted(range(len(rows)), key=lambda k: -rows[k][4])
    for j in set(range(len(rows))) - set(keep):
        assert any(overlap(i, j) > iou and order.index(i) < order.index(j) for i in keep)


@given(st.integers(0, 40), st.integers(0, 30), st.sampled_from([8, 12, 24]))
def test_mtcnn_crops_read_the_box_exactly_at_one_px_per_px(x0, y0, side):
    # (input, expected): a box of ``side`` px on pixel edges, read at ``side`` px, is
    # those pixels; one twice as large reads 2 x 2 means of a level-0 image (bilinear at
    # the shared corner of 4 pixels)
    import torch

    from face_landmarks.detectors.mtcnn import crops

    rng = np.random.default_rng(x0 * 100 + y0)
    pixels = rng.uniform(0, 255, (100, 90, 3)).astype(np.float32)
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    box = torch.tensor([[x0 - 0.5, y0 - 0.5, x0 + side - 0.5, y0 + side - 0.5]])
    # remap's fixed-point coordinates (1/32 px) hold these points exactly
    torch.testing.assert_close(crops([pixels], box, side)[0],
                               image[0, :, y0:y0 + side, x0:x0 + side], rtol=0, atol=2e-3)
    big = torch.tensor([[x0 - 0.5, y0 - 0.5, x0 + 2 * side - 0.5, y0 + 2 * side - 0.5]])
    patch = image[0, :, y0:y0 + 2 * side, x0:x0 + 2 * side]
    means = patch.reshape(3, side, 2, side, 2).mean((2, 4))
    torch.testing.assert_close(crops([pixels], big, side)[0], means, rtol=0, atol=2e-3)
    # 8-bit images are read in 8 bits: the same means, rounded
    grey = pixels.round().astype(np.uint8)
    means = torch.from_numpy(grey.astype(np.float32)).permute(2, 0, 1)[
        :, y0:y0 + 2 * side, x0:x0 + 2 * side].reshape(3, side, 2, side, 2).mean((2, 4))
    torch.testing.assert_close(crops([grey], big, side)[0], means, rtol=0, atol=0.5)
    # outside the image reads black
    outside = torch.tensor([[200.0, 200.0, 200.0 + side, 200.0 + side]])
    assert crops([pixels], outside, side).abs().max() == 0


@given(st.integers(0, 40), st.integers(0, 30), st.sampled_from([8, 12, 24]), st.integers(1, 3))
def test_mtcnn_crops_turned_by_quarter_turns_are_the_upright_crop_turned(x0, y0, side, quarters):
    # (input, expected): at one px per px every sample falls on a pixel centre, so a crop
    # turned by k quarter turns is the upright crop rotated k times (np.rot90), exactly
    from face_landmarks.detectors.mtcnn import crops

    rng = np.random.default_rng(x0 * 100 + y0)
    pixels = rng.integers(0, 256, (100, 90, 3), dtype=np.uint8)
    box = torch.tensor([[x0 - 0.5, y0 - 0.5, x0 + side - 0.5, y0 + side - 0.5]])
    upright = crops([pixels], box, side)[0].permute(1, 2, 0).numpy()  # (s, s, 3)
    turned = crops([pixels], box, side, torch.tensor([quarters * np.pi / 2]))[0]
    np.testing.assert_allclose(turned.permute(1, 2, 0).numpy(), np.rot90(upright, quarters),
                               rtol=0, atol=0)
    np.testing.assert_array_equal(crops([pixels], box, side, torch.zeros(1)).numpy(),
                                  crops([pixels], box, side).numpy())


@given(st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50), st.floats(4, 60),
                          st.floats(-0.3, 0.3), st.floats(-0.3, 0.3), st.floats(-0.3, 0.3),
                          st.floats(-0.3, 0.3), st.floats(-3.2, 3.2)), min_size=1, max_size=8))
def test_mtcnn_turned_regression_turns_the_centres_move_and_keeps_the_sides(rows):
    from face_landmarks.detectors.mtcnn import regress

    a = torch.tensor(rows, dtype=torch.float64)
    boxes = torch.cat([a[:, :2], a[:, :2] + a[:, 2:3]], 1)
    reg, angles = a[:, 3:7], a[:, 7]
    upright, turned = regress(boxes, reg), regress(boxes, reg, angles)
    torch.testing.assert_close(regress(boxes, reg, torch.zeros_like(angles)), upright)
    size = lambda b: b[:, 2:] - b[:, :2]
    torch.testing.assert_close(size(turned), size(upright))
    centre = lambda b: (b[:, :2] + b[:, 2:]) / 2
    move, moved = centre(upright) - centre(boxes), centre(turned) - centre(boxes)
    torch.testing.assert_close(moved.norm(dim=1), move.norm(dim=1))
    # the move turned by the angle: the same cross and dot products as a rotation by it
    c, s = torch.cos(angles), torch.sin(angles)
    torch.testing.assert_close(moved, torch.stack([c * move[:, 0] - s * move[:, 1],
                                                   s * move[:, 0] + c * move[:, 1]], 1))


def test_mtcnn_pyramid_starts_where_the_least_face_fills_the_window():
    det = build("mtcnn", calibration=None)
    scales = det.scales(1080, 1920, 40.0)
    assert scales[0] == pytest.approx(12 / 40)
    assert min(1080, 1920) * scales[-1] >= 12 > min(1080, 1920) * scales[-1] * det.factor
    np.testing.assert_allclose(np.array(scales[1:]) / np.array(scales[:-1]), det.factor)
    with pytest.raises(ConfigError, match=r"mtcnn: rnet_threshold must be in \(0, 1\), got 1.5"):
        build("mtcnn", rnet_threshold=1.5, calibration=None)


def test_mtcnn_without_its_package_is_one_line_naming_the_pip_command(monkeypatch):
    import importlib.util as iu

    from face_landmarks.detectors import mtcnn

    real = iu.find_spec
    monkeypatch.setattr(iu, "find_spec", lambda name, *a: None if name == "mtcnn" else real(name, *a))
    monkeypatch.setitem(sys.modules, "mtcnn", None)  # import mtcnn now raises ImportError
    with pytest.raises(ConfigError, match=r"detector 'mtcnn' needs .*pip install 'selfiter\[detectors\]'"):
        mtcnn.weights_folder()


@given(boxes_st, st.floats(0.1, 0.9))
def test_mtcnn_nms_over_the_union_is_greedy_suppression(rows, iou):
    # OpenCV's NMSBoxes, given ranks for scores, keeps what suppress keeps, in its order
    from face_landmarks.detectors.mtcnn import nms

    a = np.array(rows)
    boxes = np.concatenate([a[:, :2], a[:, :2] + a[:, 2:4]], 1)
    expected = suppress(boxes, a[:, 4], iou)
    assert nms(torch.from_numpy(boxes), torch.from_numpy(a[:, 4]), iou).tolist() == expected.tolist()


@given(boxes_st, st.floats(0.1, 0.9), st.sampled_from(["union", "min"]),
       st.lists(st.integers(0, 3), min_size=30, max_size=30))
def test_mtcnn_nms_in_groups_is_the_union_of_each_groups_nms(rows, iou, mode, labels):
    from face_landmarks.detectors.mtcnn import nms

    a = np.array(rows)
    boxes = torch.from_numpy(np.concatenate([a[:, :2], a[:, :2] + a[:, 2:4]], 1))
    scores, groups = torch.from_numpy(a[:, 4]), torch.tensor(labels[:len(a)])
    expected = set()
    for g in groups.unique().tolist():
        idx = torch.nonzero(groups == g)[:, 0]
        expected |= set(idx[nms(boxes[idx], scores[idx], iou, mode)].tolist())
    kept = nms(boxes, scores, iou, mode, groups=groups).tolist()
    assert len(kept) == len(set(kept)) and set(kept) == expected
    none = torch.zeros(0, dtype=torch.long)
    assert nms(boxes[none], scores[none], iou, mode, groups=groups[none]).numel() == 0


@functools.lru_cache(1)
def float32_mtcnn():
    det = build("mtcnn", calibration=None, precision="float32")
    det._pnet_logit = -2.0  # a low floor: many windows, so the comparison has something to compare
    return det


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(6, 60), st.integers(6, 90)), min_size=1, max_size=6),
       st.integers(0, 2 ** 31 - 1))
@torch.no_grad()
def test_mtcnn_packed_levels_find_what_each_level_finds_alone(halves, seed):
    # levels of even sides on one canvas: P-Net's windows of each level are those it has
    # alone, so the proposals (before the suppression across levels) are the same
    from face_landmarks.detectors.mtcnn import pack_levels

    det = float32_mtcnn()
    rng = np.random.default_rng(seed)
    levels = sorted(((rng.integers(0, 256, (2 * h, 2 * w, 3), dtype=np.uint8), 2 * w / 1000, 2 * h / 900)
                     for h, w in halves), key=lambda lv: -lv[0].size)
    alone = torch.cat([torch.zeros(0, 5)] + [det.canvas_proposals(*c) for c in pack_levels(levels, area=0)])
    packed = pack_levels(levels, area=10 ** 9)
    assert len(packed) == 1
    canvas, places = packed[0]
    for (img, _, _), (top, left, h, w, _, _) in zip(levels, places.long().tolist()):
        assert top % 2 == left % 2 == 0 and (h, w) == img.shape[:2]
        np.testing.assert_array_equal(canvas[top:top + h, left:left + w], img)
    together = det.canvas_proposals(*packed[0])
    order = lambda b: b[np.lexsort(b.T.numpy()[::-1])]
    assert together.shape == alone.shape
    torch.testing.assert_close(order(together), order(alone), rtol=1e-4, atol=1e-3)


@given(st.integers(1, 3), st.integers(1, 12), st.integers(1, 40), st.integers(1, 40),
       st.sampled_from([(2, 2), (3, 2), (2, 1), (3, 1)]))
def test_max_pool_is_pytorchs_ceil_mode_max_pool(b, c, h, w, pool):
    from face_landmarks.detectors.mtcnn import max_pool

    kernel, stride = pool
    if min(h, w) < kernel:
        return
    x = torch.randn(b, c, h, w).contiguous(memory_format=torch.channels_last)
    out = max_pool(x, kernel, stride)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, F.max_pool2d(x, kernel, stride, ceil_mode=True), rtol=0, atol=0)


@given(st.integers(1, 3), st.integers(1, 16), st.integers(1, 20), st.integers(1, 20))
def test_row_prelu_is_prelu_in_either_layout(b, c, h, w):
    from face_landmarks.detectors.mtcnn import RowPReLU

    p = RowPReLU(c)
    p.weight.data.uniform_(-1, 1)
    x = torch.randn(b, c, h, w)
    with torch.no_grad():
        expected = F.prelu(x, p.weight)
        torch.testing.assert_close(p(x.contiguous(memory_format=torch.channels_last)), expected)
        torch.testing.assert_close(p(x), expected)


@given(st.integers(1, 12), st.integers(1, 12), st.floats(-1.0, 1.0), st.integers(0, 10 ** 6))
def test_peaks_are_the_cells_above_the_floor_that_equal_their_3x3_max(h, w, least, seed):
    # (input, expected): the cells a 3 x 3 max-pool leaves unchanged, among those >= least;
    # a coarse grid of values makes ties (plateaus) common
    from face_landmarks.detectors.mtcnn import peaks

    g = torch.Generator().manual_seed(seed)
    score = torch.randint(-3, 4, (h, w), generator=g).float() / 3
    pooled = F.max_pool2d(score[None, None], 3, 1, 1)[0, 0]
    expected = torch.nonzero((score >= least) & (score == pooled), as_tuple=True)
    iy, ix = peaks(score, least)
    assert sorted(zip(iy.tolist(), ix.tolist())) == sorted(zip(*(e.tolist() for e in expected)))


def test_pnet_logit_is_the_two_class_softmax_of_the_shipped_classifier():
    build("mtcnn", calibration=None)  # skips where the mtcnn package is missing
    from face_landmarks.detectors.mtcnn import PNet, keras_weights

    w = keras_weights("pnet")
    net = PNet(w).eval()
    x = torch.randn(2, 3, 30, 40)
    with torch.no_grad():
        logit, features = net(x)
        per_window = features.permute(0, 2, 3, 1)  # (B, h, w, 32)
        two = per_window @ torch.from_numpy(w[11][0, 0]) + torch.from_numpy(w[12])
        torch.testing.assert_close(torch.sigmoid(logit), torch.softmax(two, -1)[..., 1],
                                   rtol=0, atol=1e-5)
        reg = per_window @ torch.from_numpy(w[9][0, 0]) + torch.from_numpy(w[10])
        torch.testing.assert_close(net.regression(per_window.reshape(-1, 32)), reg.reshape(-1, 4))


def test_mtcnn_refuses_an_unknown_precision():
    with pytest.raises(ConfigError, match=r"mtcnn: precision must be one of auto, float32, "
                                          r"bfloat16, got 'half'"):
        build("mtcnn", precision="half", calibration=None)


def test_mtcnn_auto_precision_follows_the_cpu():
    from face_landmarks.detectors.mtcnn import native_bfloat16

    det = build("mtcnn", calibration=None)
    assert det.precision == ("bfloat16" if native_bfloat16() else "float32")
    assert det.onet.cls.weight.dtype == torch.float32
    assert det.pnet.logit.weight.dtype == getattr(torch, det.precision)


def test_mtcnn_in_bfloat16_finds_the_boxes_it_finds_in_float32():
    # every sample face, alone and shrunk into a 1080p canvas with others: the detections
    # of the two precisions pair up with IoU >= 0.8, scores within 0.05, and on the canvas
    # both match the true boxes alike. 0.8, not closer: the calibrated boxes themselves
    # are 0.81-0.90 from the true ones there, and levels one pixel wider (even sides)
    # moved one face's pair below 0.9, to 0.87
    import cv2

    full, half = build("mtcnn", precision="float32"), build("mtcnn", precision="bfloat16")
    canvas = np.full((1080, 1920, 3), 100, np.uint8)
    truth = []
    for i, at in zip(range(4), ((100, 200), (900, 300), (1400, 600), (300, 700))):
        image, box = sample(i)
        side = 200 - 30 * i
        face = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
        canvas[at[1]:at[1] + side, at[0]:at[0] + side] = face
        truth.append(np.array([*at, *at]) + box * side / image.shape[1])
    found = 0
    for image in [sample(i)[0] for i in range(12)] + [canvas]:
        (a, sa), (b, sb) = full.raw_detections(image), half.raw_detections(image)
        assert len(a) == len(b)
        found += len(a)
        if len(a):
            iou = box_iou(a, b)
            assert (iou.max(1) >= 0.8).all()
            np.testing.assert_allclose(sb[iou.argmax(1)], sa, atol=0.05)
    assert found >= 12 + 4
    on_full, on_half = (box_iou(np.array(truth), np.asarray(d.detect(canvas)).reshape(-1, 4)).max(1)
                        for d in (full, half))
    assert (on_full >= 0.75).all() and (on_half >= 0.75).all()
    np.testing.assert_allclose(on_half, on_full, atol=0.05)


def test_mtcnn_finds_the_sample_faces_turned_by_20_to_35_degrees():
    # (input, expected): each sample face turned about its centre, its landmark box from
    # the turned points; R-Net turns away some of these upright-trained, and the default
    # retries them turned by +-25 degrees (upright only, roll=0: 67 of the 72 when written)
    import cv2

    from face_landmarks.data.dataset import decode_image
    from face_landmarks.data.frame import landmark_boxes
    from face_landmarks.data.pts import read_pts
    from tests.face_landmarks.test_detectors import SAMPLES

    turned, upright = build("mtcnn"), build("mtcnn", roll=0)
    found = {"turned": 0, "upright": 0}
    for face in SAMPLES:
        image, pts = decode_image(face.image), read_pts(face.pts).numpy()
        centre = tuple(float(v) for v in pts.mean(0))
        for angle in (20, -20, 30, -30, 35, -35):
            m = cv2.getRotationMatrix2D(centre, angle, 1.0)
            img = cv2.warpAffine(image, m, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
            truth = landmark_boxes(torch.from_numpy(pts @ m[:, :2].T + m[:, 2]), 1.0)
            for key, det in (("turned", turned), ("upright", upright)):
                boxes = np.asarray(det.detect(img), dtype=np.float64).reshape(-1, 4)
                found[key] += int(len(boxes) > 0 and
                                  box_iou(truth.numpy().reshape(1, 4), boxes).max() >= 0.5)
    n = 6 * len(SAMPLES)
    assert found["turned"] >= n - 2 and found["turned"] > found["upright"], (found, n)


def test_mtcnn_refuses_a_roll_outside_0_to_90_degrees():
    with pytest.raises(ConfigError, match=r"mtcnn: roll must be in \[0, 90\] degrees, got 120"):
        build("mtcnn", roll=120, calibration=None)
    with pytest.raises(ConfigError, match=r"mtcnn: roll_floor must be in \[0, 1\], got -1"):
        build("mtcnn", roll_floor=-1, calibration=None)
    with pytest.raises(ConfigError, match=r"mtcnn: pack_area must be an integer >= 0"):
        build("mtcnn", pack_area=-5, calibration=None)
