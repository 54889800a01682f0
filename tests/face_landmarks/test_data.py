"""The .pts format, the 300-W layout, face frames and split loading."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from face_landmarks.data.dataset import decode_image, load_faces
from face_landmarks.data.frame import (
    box_frames,
    frame_to_image,
    image_to_frame,
    invert_affine,
    landmark_boxes,
    warp_to_frame,
)
from face_landmarks.data.layout import SAMPLE_ROOT, SPLITS, list_faces, split_folders
from face_landmarks.data.pts import format_pts, read_pts, write_pts
from selfiter.errors import DataError

SAMPLE_PTS = SAMPLE_ROOT / "helen" / "testset" / "296814969_3.pts"


def _shape(seed: int = 0, n: int = 68) -> np.ndarray:
    """A plausible 0-based face: 68 points spread over a 60 x 80 px box at (20, 15)."""
    rng = np.random.default_rng(seed)
    return rng.uniform((20.0, 15.0), (80.0, 95.0), size=(n, 2))


# --- .pts -------------------------------------------------------------------------


def test_read_pts_official_file_is_zero_based():
    pts = read_pts(SAMPLE_PTS)
    assert pts.shape == (68, 2) and pts.dtype == torch.float64
    first = [float(v) for v in SAMPLE_PTS.read_text().splitlines()[3].split()]
    assert pts[0].tolist() == pytest.approx([first[0] - 1, first[1] - 1])


def test_write_pts_writes_official_one_based_text(tmp_path):
    points = np.zeros((68, 2))
    points[0] = (0.0, 9.5)
    write_pts(tmp_path / "a.pts", points)
    lines = (tmp_path / "a.pts").read_text().splitlines()
    assert lines[:4] == ["version: 1", "n_points: 68", "{", "1.000000 10.500000"]
    assert lines[-1] == "}" and len(lines) == 72
    assert list(tmp_path.iterdir()) == [tmp_path / "a.pts"]  # no temporary left behind


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (68, 2), elements=st.floats(-2000.0, 5000.0)))
def test_pts_round_trip(points):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "face.pts"
        write_pts(path, points)
        back = read_pts(path)
    np.testing.assert_allclose(back.numpy(), points, atol=1e-6, rtol=0)


def _official_lines() -> list[str]:
    return format_pts(_shape()).splitlines()


def _replace(i: int, text: str):
    return lambda lines: lines[:i] + [text] + lines[i + 1:]


BAD_PTS = {
    "bad version": (_replace(0, "version: 2"), 1, "version: 1"),
    "no version": (_replace(0, "n_points: 68"), 1, "version: 1"),
    "wrong n_points": (_replace(1, "n_points: 67"), 2, "n_points: 68"),
    "missing open brace": (lambda ls: ls[:2] + ls[3:], 3, "'{'"),
    "non-number": (_replace(12, "12.5 abc"), 13, "two numbers"),
    "three fields": (_replace(20, "1 2 3"), 21, "'x y'"),
    "one field": (_replace(30, "1"), 31, "'x y'"),
    "not finite": (_replace(40, "nan 3"), 41, "finite"),
    "67 points": (lambda ls: ls[:70] + ls[71:], 71, "after 67 points"),
    "69 points": (lambda ls: ls[:71] + ["1 1"] + ls[71:], 72, "expected '}'"),
    "missing close brace": (lambda ls: ls[:71], 72, "file ends early"),
    "text after brace": (lambda ls: ls + ["", "extra"], 74, "after '}'"),
    "empty file": (lambda ls: [], 1, "version: 1"),
}


@pytest.mark.parametrize("case", list(BAD_PTS))
def test_read_pts_faults_name_file_and_line(tmp_path, case):
    edit, line, words = BAD_PTS[case]
    path = tmp_path / "bad_face.pts"
    path.write_text("\n".join(edit(_official_lines())) + "\n")
    with pytest.raises(DataError) as err:
        read_pts(path)
    assert f"{path}:{line}:" in str(err.value)
    assert words in str(err.value)


def test_read_pts_accepts_official_spacing_and_crlf(tmp_path):
    lines = _official_lines()
    lines[1] = "n_points:  68"
    path = tmp_path / "crlf.pts"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    np.testing.assert_allclose(read_pts(path).numpy(), _shape(), atol=1e-6)


def test_read_pts_non_ascii_names_line(tmp_path):
    path = tmp_path / "latin.pts"
    lines = _official_lines()
    path.write_bytes(("\n".join(lines[:5]) + "\n1.0 2.0\xe9\n").encode("latin-1"))
    with pytest.raises(DataError, match=re.escape(f"{path}:6:")):
        read_pts(path)


def test_read_pts_missing_file_names_it(tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nope.pts"))):
        read_pts(tmp_path / "nope.pts")


# --- layout -----------------------------------------------------------------------


def _write_face(folder: Path, stem: str, image: np.ndarray | None = None,
                suffix: str = ".png", points: np.ndarray | None = None) -> Path:
    """A face on disk: an image (default 100 x 120 grey) and its .pts."""
    folder.mkdir(parents=True, exist_ok=True)
    img = np.full((100, 120, 3), 128, np.uint8) if image is None else image
    path = folder / f"{stem}{suffix}"
    assert cv2.imwrite(str(path), img)
    write_pts(folder / f"{stem}.pts", _shape() if points is None else points)
    return path


def test_split_folders_named_and_custom():
    assert split_folders("full") == ("helen/testset", "lfpw/testset", "ibug")
    assert split_folders("train") == ("afw", "helen/trainset", "lfpw/trainset")
    assert split_folders("competition") == ("300W/01_Indoor", "300W/02_Outdoor")
    assert split_folders(" helen/testset, lfpw/testset/ ") == ("helen/testset", "lfpw/testset")
    assert set(SPLITS) == {"train", "common", "challenging", "full", "competition"}
    with pytest.raises(DataError, match="named splits|comma-separated"):
        split_folders(" , ")


def test_list_faces_sorted_folder_by_folder(tmp_path):
    for stem in ("b", "a", "c"):
        _write_face(tmp_path / "lfpw" / "testset", stem, suffix=".jpg")
    _write_face(tmp_path / "helen" / "testset", "z", suffix=".jpeg")
    (tmp_path / "helen" / "testset" / "._z.jpeg").write_bytes(b"macOS resource fork")
    faces = list_faces(tmp_path, "common")
    names = [f.image.relative_to(tmp_path).as_posix() for f in faces]
    assert names == ["helen/testset/z.jpeg", "lfpw/testset/a.jpg", "lfpw/testset/b.jpg",
                     "lfpw/testset/c.jpg"]
    assert all(f.pts == f.image.with_suffix(".pts") for f in faces)


def test_missing_folders_are_all_named_with_the_root(tmp_path):
    _write_face(tmp_path / "afw", "a")
    with pytest.raises(DataError) as err:
        list_faces(tmp_path, "train")
    msg = str(err.value)
    assert "helen/trainset" in msg and "lfpw/trainset" in msg and str(tmp_path) in msg
    assert "afw," not in msg


def test_missing_root_is_said(tmp_path):
    with pytest.raises(DataError, match="data root itself does not exist"):
        list_faces(tmp_path / "absent", "common")


def test_misspelt_custom_split_lists_named_splits(tmp_path):
    with pytest.raises(DataError, match="helen/tset.*named splits are train"):
        list_faces(tmp_path, "helen/tset")


def test_image_without_pts_is_named(tmp_path):
    path = _write_face(tmp_path / "ibug", "a")
    (tmp_path / "ibug" / "a.pts").unlink()
    with pytest.raises(DataError, match=re.escape(f"{path}: image has no annotation a.pts")):
        list_faces(tmp_path, "challenging")


def test_pts_without_image_is_named(tmp_path):
    _write_face(tmp_path / "ibug", "a")
    write_pts(tmp_path / "ibug" / "b.pts", _shape())
    orphan = tmp_path / "ibug" / "b.pts"
    with pytest.raises(DataError, match=re.escape(f"{orphan}: annotation has no image")):
        list_faces(tmp_path, "challenging")


def test_empty_folder_is_named(tmp_path):
    (tmp_path / "ibug").mkdir()
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'ibug'}: no images")):
        list_faces(tmp_path, "challenging")


def test_two_images_of_one_annotation_are_named(tmp_path):
    _write_face(tmp_path / "ibug", "a", suffix=".jpg")
    _write_face(tmp_path / "ibug", "a", suffix=".png")
    with pytest.raises(DataError, match="a.jpg and a.png"):
        list_faces(tmp_path, "challenging")


# --- frames -----------------------------------------------------------------------


def _close(actual: torch.Tensor, expected: list) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype))


def test_landmark_box_hand_computed():
    pts = torch.tensor([[[0.0, 0.0], [10.0, 20.0], [5.0, 3.0]]])
    _close(landmark_boxes(pts, 1.4), [[-9.0, -4.0, 19.0, 24.0]])


def test_box_frame_maps_frame_edges_to_box_edges():
    box = torch.tensor([10.0, 20.0, 74.0, 84.0])
    affine = box_frames(box, 32)
    corners = torch.tensor([[-0.5, -0.5], [31.5, 31.5], [15.5, 15.5]])
    _close(frame_to_image(corners, affine), [[10.0, 20.0], [74.0, 84.0], [42.0, 52.0]])


def test_box_frame_of_whole_image_is_identity():
    affine = box_frames(torch.tensor([-0.5, -0.5, 63.5, 63.5]), 64)
    _close(affine, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def test_non_square_box_is_squared_on_its_longer_side():
    boxes = torch.tensor([[0.0, 40.0, 100.0, 60.0], [0.0, 0.0, 100.0, 100.0]])
    wide, square = box_frames(boxes, 50)
    assert wide[:, 0].tolist() == square[:, 0].tolist()
    assert float(wide[1, 1]) == pytest.approx(2.0)
    _close(frame_to_image(torch.tensor([[24.5, 24.5]]), wide), [[50.0, 50.0]])


def test_empty_box_is_refused():
    with pytest.raises(ValueError, match="positive"):
        box_frames(torch.tensor([5.0, 5.0, 5.0, 5.0]), 64)


@settings(max_examples=60, deadline=None)
@given(
    centre=st.tuples(st.floats(-500, 2000), st.floats(-500, 2000)),
    side=st.floats(1.0, 3000.0),
    angle=st.floats(-3.2, 3.2),
    frame_size=st.integers(8, 512),
    seed=st.integers(0, 2**16),
)
def test_frame_image_round_trip(centre, side, angle, frame_size, seed):
    cx, cy = centre
    affine = box_frames(torch.tensor([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]),
                        frame_size)
    # a rotated frame too: the mapping functions take any similarity, not only boxes
    c, s = np.cos(angle), np.sin(angle)
    rotated = affine.clone()
    rotated[:, :2] = affine[:, :2] @ torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    affines = torch.stack([affine, rotated])  # (2, 2, 3)
    pts = torch.from_numpy(np.random.default_rng(seed).uniform(-10, frame_size + 10, (2, 68, 2)))
    back = image_to_frame(frame_to_image(pts, affines), affines)
    torch.testing.assert_close(back, pts, atol=1e-7 * max(1.0, side), rtol=1e-9)
    torch.testing.assert_close(invert_affine(invert_affine(affines)), affines)


def test_mapping_keeps_point_dtype():
    affine = box_frames(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), 20)
    pts = torch.zeros(1, 68, 2, dtype=torch.float32)
    assert frame_to_image(pts, affine).dtype == torch.float32


def test_warp_uses_pixel_centres_and_black_border():
    image = np.zeros((20, 30, 3), np.uint8)
    image[5, 7] = (200, 100, 50)  # row 5, column 7: x = 7, y = 5
    shift = np.array([[1.0, 0.0, 3.0], [0.0, 1.0, 2.0]])  # frame (x, y) -> image (x + 3, y + 2)
    frame = warp_to_frame(image, shift, 16)
    assert frame.shape == (16, 16, 3)
    assert frame[3, 4].tolist() == [200, 100, 50]
    assert int(frame.sum()) == 350
    outside = np.array([[1.0, 0.0, 100.0], [0.0, 1.0, 100.0]])
    assert int(warp_to_frame(np.full((20, 30, 3), 255, np.uint8), outside, 8).max()) == 0


def test_warp_does_not_alias_when_shrinking():
    checker = ((np.indices((1024, 1024)).sum(axis=0) % 2) * 255).astype(np.uint8)
    image = np.repeat(checker[:, :, None], 3, axis=2)
    frame = warp_to_frame(image, box_frames(torch.tensor([0.0, 0.0, 1024.0, 1024.0]), 128), 128)
    assert abs(float(frame.mean()) - 127.5) < 2.0
    assert float(frame.std()) < 5.0


# --- images and loading -------------------------------------------------------------


def test_decode_image_colour_order_grey_16bit_alpha(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 2] = 255  # red, in cv2's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    assert decode_image(tmp_path / "red.png")[0, 0].tolist() == [255, 0, 0]
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((4, 5), 77, np.uint8))
    grey = decode_image(tmp_path / "grey.png")
    assert grey.shape == (4, 5, 3) and grey.dtype == np.uint8 and grey[0, 0].tolist() == [77] * 3
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((4, 5, 3), 65535, np.uint16))
    assert decode_image(tmp_path / "deep.png")[0, 0].tolist() == [255] * 3
    cv2.imwrite(str(tmp_path / "deep_grey.png"), np.full((4, 5), 257 * 10, np.uint16))
    assert decode_image(tmp_path / "deep_grey.png")[0, 0].tolist() == [10] * 3
    bgra = np.concatenate([bgr, np.zeros((4, 5, 1), np.uint8)], axis=2)
    cv2.imwrite(str(tmp_path / "alpha.png"), bgra)
    assert decode_image(tmp_path / "alpha.png")[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("content", [b"", b"not an image at all", "truncated"])
def test_corrupt_image_is_named(tmp_path, content):
    path = tmp_path / "face.jpg"
    if content == "truncated":
        ok, buf = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))
        content = buf.tobytes()[: len(buf) // 2]
    path.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(f"{path}: not a readable image")):
        decode_image(path)


def test_unreadable_image_is_named(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'gone.png'}: cannot read image")):
        decode_image(tmp_path / "gone.png")


def test_load_faces_corrupt_image_in_split_is_named(tmp_path):
    _write_face(tmp_path / "ibug", "a")
    bad = _write_face(tmp_path / "ibug", "b", suffix=".jpg")
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataError, match=re.escape(str(bad))):
        load_faces(tmp_path, "challenging", frame_size=32)


def test_load_faces_bad_pts_in_split_is_named(tmp_path):
    _write_face(tmp_path / "ibug", "a")
    (tmp_path / "ibug" / "a.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'ibug' / 'a.pts'}:5:")):
        load_faces(tmp_path, "challenging", frame_size=32)


def test_load_faces_degenerate_annotation_is_named(tmp_path):
    _write_face(tmp_path / "ibug", "a", points=np.full((68, 2), 7.0))
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'ibug' / 'a.pts'}: all 68 points")):
        load_faces(tmp_path, "challenging", frame_size=32)


def test_load_faces_frames_follow_the_landmarks(tmp_path):
    """A coloured dot under landmark 31 lands under theta_gt's landmark 31 in the frame,
    for colour, greyscale and 16-bit images."""
    points = _shape(1)
    x, y = (int(v) for v in points[30])
    points[30] = (x, y)
    colour = np.zeros((100, 120, 3), np.uint8)
    colour[y - 1:y + 2, x - 1:x + 2] = (0, 0, 255)  # BGR red
    _write_face(tmp_path / "lfpw" / "testset", "colour", colour, points=points)
    grey = np.zeros((100, 120), np.uint16)
    grey[y - 1:y + 2, x - 1:x + 2] = 65535
    _write_face(tmp_path / "helen" / "testset", "grey", grey, points=points)
    data = load_faces(tmp_path, "common", frame_size=128, box_scale=1.4)

    assert data.inputs.shape == (2, 3, 128, 128) and data.inputs.dtype == torch.uint8
    assert data.theta_gt.shape == (2, 136) and data.theta_gt.dtype == torch.float32
    assert data.meta["frame_to_image"].shape == (2, 2, 3)
    assert data.meta["frame_to_image"].dtype == torch.float64
    assert data.meta["points_image"].dtype == torch.float32
    assert [Path(p).name for p in data.meta["paths"]] == ["grey.png", "colour.png"]
    fx, fy = data.theta_gt[:, 60:62].round().long().unbind(-1)
    assert data.inputs[0, :, fy[0], fx[0]].tolist() == [255, 255, 255]
    assert data.inputs[1, :, fy[1], fx[1]].tolist() == [255, 0, 0]
    torch.testing.assert_close(data.meta["points_image"][1].double(), torch.from_numpy(points),
                               atol=1e-5, rtol=0)
    back = frame_to_image(data.theta_gt.reshape(2, 68, 2), data.meta["frame_to_image"])
    torch.testing.assert_close(back, data.meta["points_image"], atol=1e-4, rtol=0)


def test_load_faces_frame_is_centred_on_the_landmark_box():
    data = load_faces(SAMPLE_ROOT, "common", frame_size=64, box_scale=2.0)
    assert len(data) == 12
    pts = data.theta_gt.reshape(-1, 68, 2)
    lo, hi = pts.amin(dim=1), pts.amax(dim=1)
    torch.testing.assert_close((lo + hi) / 2, torch.full((12, 2), 31.5), atol=1e-4, rtol=0)
    # box_scale 2: the landmarks' longer side spans half the frame
    torch.testing.assert_close((hi - lo).amax(dim=1), torch.full((12,), 32.0), atol=1e-4, rtol=0)


def test_load_faces_limit(tmp_path):
    assert len(load_faces(SAMPLE_ROOT, "helen/testset", frame_size=16, limit=2)) == 2
    with pytest.raises(ValueError, match="limit"):
        load_faces(SAMPLE_ROOT, "common", limit=0)


def test_samples_are_the_first_faces_of_the_shared_copy(data_300w):
    for folder in ("helen/testset", "lfpw/testset"):
        shared = list_faces(data_300w, folder)[:6]
        bundled = list_faces(SAMPLE_ROOT, folder)
        assert [f.image.name for f in bundled] == [f.image.name for f in shared]
        assert all(b.image.read_bytes() == s.image.read_bytes() and
                   b.pts.read_bytes() == s.pts.read_bytes() for b, s in zip(bundled, shared))


def test_real_full_split_names_missing_ibug(data_300w):
    with pytest.raises(DataError) as err:
        load_faces(data_300w, "full", limit=1)
    assert "ibug" in str(err.value) and str(data_300w) in str(err.value)


def test_real_common_split_with_progress_bar(data_300w, capsys):
    data = load_faces(data_300w, "common", limit=201)
    assert len(data) == 201 and data.inputs.shape[1:] == (3, 256, 256)
    assert data.meta["paths"][0].endswith("helen/testset/296814969_3.jpg")
    assert "load common" in capsys.readouterr().err
    # every landmark inside the frame, with the box_scale margin
    assert 0 < float(data.theta_gt.min()) and float(data.theta_gt.max()) < 255


@settings(max_examples=25, deadline=None)
@given(side=st.floats(300, 900), cx=st.floats(0, 1200), cy=st.floats(0, 900),
       angle=st.floats(-0.6, 0.6))
def test_shrinking_only_the_part_under_the_frame_matches_shrinking_the_whole_photo(side, cx, cy, angle):
    # a large smooth photo, a frame well coarser than it centred anywhere on it (often
    # reaching out of it)
    yy, xx = np.mgrid[0:900, 0:1200].astype(np.float64)
    image = np.stack([127 + 100 * np.sin(xx / 37.0) * np.cos(yy / 23.0),
                      127 + 100 * np.cos((xx + yy) / 51.0), xx * 0 + 90], -1).astype(np.uint8)
    a = side / 128 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    affine = np.hstack([a, (np.array([cx, cy]) - a @ np.array([63.5, 63.5]))[:, None]])
    got = warp_to_frame(image, affine, 128).astype(np.float64)
    # the reference: the whole photo shrunk by the whole factor, then warped (the mapping
    # of cv2.resize's centres)
    n = int(np.sqrt(abs(np.linalg.det(a))))
    small = cv2.resize(image[: 900 // n * n, : 1200 // n * n], (1200 // n, 900 // n),
                       interpolation=cv2.INTER_AREA)
    ref = cv2.warpAffine(small, np.hstack([affine[:, :2] / n, affine[:, 2:] / n + (1 / n - 1) / 2]),
                         (128, 128), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(np.float64)
    inside = (got > 0).all(-1) & (ref > 0).all(-1)  # the third channel is 90 on the photo
    assert inside.mean() > 0.2
    assert np.abs(got - ref)[inside].mean() < 1.0
