"""A face-detector test set that looks like users' photos, composed from real faces.

The 300-W crops are 320 x 320 px with one large centred face each; photos
have faces of any size, tilted, in groups, on busy backgrounds. This module
composes such photos, deterministically from a seed: real 300-W faces of the
COMMON test split (helen/testset + lfpw/testset; never trained on, and not
the training faces the detectors' calibrations were fitted on) are pasted
with a feathered elliptical mask (the face with some hair and neck, not the
crop's square) onto real photos without people (scikit-image's packaged
photos, the two with a human face left out), at landmark-box sides of 30-300
px (each of the size bins :data:`SIZE_BINS` equally likely, log-uniform
within), rotated by up to +-30 degrees, 1-6 faces per image, footprints not
overlapping; images are 640 x 480 and 1920 x 1080 (a few 4000 x 3000, 400 x
300 and 320 x 240; a fifth of them portrait), a quarter grey; every fourth
image has no face at all.

Each face's ground truth is its 68 points moved by the same affine map the
pixels were warped with (pixel-centre convention of
:mod:`face_landmarks.data.frame`, the convention ``cv2.warpAffine`` uses), and
its landmark box is computed from those points
(:func:`~face_landmarks.data.frame.landmark_boxes`, scale 1), so the truth is
exact whatever the rotation. Image ``i`` depends only on ``(seed, i)``: the
first ``N`` images of a set are the same with any ``--limit``.

    python benchmarks/composed_faces.py --out /tmp/composed --limit 12   # look at them
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch

from face_landmarks.data.dataset import decode_image
from face_landmarks.data.frame import landmark_boxes
from face_landmarks.data.layout import FaceFiles, list_faces
from face_landmarks.data.pts import read_pts

REPO = Path(__file__).resolve().parents[1]
#: scikit-image photos stored in its wheel, none with a human face (astronaut and camera,
#: the cameraman, are left out; chelsea is a cat, a fair test of false detections)
BACKGROUNDS = ("brick", "cell", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
               "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket",
               "text")
#: landmark-box sides (px) the faces are drawn in, each bin equally likely
SIZE_BINS = ((30, 40), (40, 60), (60, 100), (100, 200), (200, 300))
#: (width, height) of the landscape images and their shares
SIZES = (((640, 480), 0.45), ((1920, 1080), 0.35), ((4000, 3000), 0.08), ((400, 300), 0.06),
         ((320, 240), 0.06))
PORTRAIT_SHARE = 0.2
GREY_SHARE = 0.25
MAX_ANGLE = 30.0
MAX_FACES = 6
#: every EMPTY_EVERY-th image (index % EMPTY_EVERY == EMPTY_EVERY - 1) has no face
EMPTY_EVERY = 4
#: the face's largest side as a share of the image's shorter side
MAX_FACE_SHARE = 0.8


@dataclass
class Composed:
    """One composed photo and its faces' truth."""

    #: e.g. ``0007_1920x1080_grey``
    name: str
    #: ``(H, W, 3)`` uint8 RGB (grey images have three equal channels)
    image: np.ndarray
    #: landmark boxes ``(K, 4)`` float64 px, from the moved points
    boxes: np.ndarray
    #: ``(K, 68, 2)`` float64 px
    points: np.ndarray
    #: the 300-W image each face came from, ``K`` paths
    sources: list[str]
    grey: bool


def moved(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``points: (..., 2)`` under the ``(2, 3)`` affine map ``x -> A x + t``."""
    return np.asarray(points, np.float64) @ affine[:, :2].T + affine[:, 2]


def box_of(points: np.ndarray) -> np.ndarray:
    """The landmark box ``(4,)`` of ``points: (68, 2)`` (the training convention)."""
    return landmark_boxes(torch.as_tensor(points), 1.0).numpy()


def face_affine(points: np.ndarray, side: float, angle: float,
                centre: Sequence[float]) -> np.ndarray:
    """The ``(2, 3)`` similarity that turns the face of ``points: (68, 2)`` by ``angle``
    degrees (counter-clockwise as shown, y down) and scales and moves it so that the
    landmark box of the moved points is the square of side ``side`` centred on ``centre``."""
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    turned = np.asarray(points, np.float64) @ rot.T
    lo, hi = turned.min(0), turned.max(0)
    k = side / (hi - lo).max()
    linear = k * rot
    return np.hstack([linear, (np.asarray(centre, np.float64) - k * (lo + hi) / 2)[:, None]])


def face_mask(shape: tuple[int, int], box: np.ndarray) -> np.ndarray:
    """A feathered ellipse ``(h, w)`` float32 in [0, 1] over the face of landmark box
    ``box`` (source px): the face, forehead and some hair above, the chin and a little
    neck below; zero at the crop's border, so no square edge is pasted."""
    side = box[2] - box[0]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2 - 0.12 * side
    mask = np.zeros(shape, np.float32)
    cv2.ellipse(mask, (round(cx), round(cy)), (round(0.62 * side), round(0.75 * side)), 0, 0,
                360, 1.0, -1)
    edge = max(2, round(0.04 * side))
    mask[:edge], mask[-edge:], mask[:, :edge], mask[:, -edge:] = 0, 0, 0, 0
    sigma = 0.05 * side
    return cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma)


def footprint(mask_box: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The bounding box ``(4,)`` (px) of the moved rectangle ``mask_box`` (source px)."""
    x0, y0, x1, y1 = mask_box
    corners = moved(np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]), affine)
    return np.concatenate([corners.min(0), corners.max(0)])


def paste(canvas: np.ndarray, face: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> None:
    """Blend ``face: (h, w, 3)`` uint8 through ``mask: (h, w)`` float32 into ``canvas``
    (in place) under the ``(2, 3)`` affine map from face px to canvas px."""
    affine = np.asarray(affine, np.float64)
    scale = np.sqrt(abs(np.linalg.det(affine[:, :2])))
    if scale < 0.7:  # shrink by area averaging first: a bilinear warp would alias
        small = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / face.shape[1], small.shape[0] / face.shape[0]
        mask = cv2.resize(mask, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
        # small px x_s = f x + (f - 1) / 2, so x = (x_s - (f - 1) / 2) / f
        inv = np.array([[1 / fx, 0, -(fx - 1) / (2 * fx)], [0, 1 / fy, -(fy - 1) / (2 * fy)]])
        affine = np.hstack([affine[:, :2] @ inv[:, :2],
                            (affine[:, :2] @ inv[:, 2] + affine[:, 2])[:, None]])
        face = small
    h, w = canvas.shape[:2]
    x0, y0, x1, y1 = footprint(np.array([0, 0, face.shape[1] - 1, face.shape[0] - 1]), affine)
    x0, y0 = max(0, int(np.floor(x0)) - 1), max(0, int(np.floor(y0)) - 1)
    x1, y1 = min(w, int(np.ceil(x1)) + 2), min(h, int(np.ceil(y1)) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    roi = affine.copy()
    roi[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(face, roi, size, flags=cv2.INTER_LINEAR, borderValue=0)
    alpha = cv2.warpAffine(mask, roi, size, flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
    region = canvas[y0:y1, x0:x1].astype(np.float32)
    canvas[y0:y1, x0:x1] = np.clip(region * (1 - alpha) + warped * alpha + 0.5, 0, 255).astype(
        np.uint8)


def background(name: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(height, width, 3)`` uint8 RGB cut of the packaged photo ``name``: scaled to
    cover the image (at most 3x; a small photo is tiled, mirrored, beyond that), then
    a random crop, sometimes mirrored."""
    from image_align.photos import package_photo  # scikit-image's packaged photos

    photo = package_photo(f"skimage:{name}")
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=2)
    photo = np.ascontiguousarray(photo[..., :3])
    ph, pw = photo.shape[:2]
    f = min(max(width / pw, height / ph) * rng.uniform(1.0, 1.5), 3.0)
    photo = cv2.resize(photo, None, fx=f, fy=f,
                       interpolation=cv2.INTER_LINEAR if f > 1 else cv2.INTER_AREA)
    ph, pw = photo.shape[:2]
    photo = np.pad(photo, ((0, max(0, height - ph)), (0, max(0, width - pw)), (0, 0)),
                   mode="symmetric")
    y = int(rng.integers(0, photo.shape[0] - height + 1))
    x = int(rng.integers(0, photo.shape[1] - width + 1))
    out = photo[y:y + height, x:x + width]
    return np.ascontiguousarray(out[:, ::-1] if rng.random() < 0.5 else out)


def image_size(rng: np.random.Generator) -> tuple[int, int]:
    """``(width, height)`` of one composed image."""
    sizes, shares = zip(*SIZES)
    w, h = sizes[int(rng.choice(len(sizes), p=np.array(shares) / sum(shares)))]
    return (h, w) if rng.random() < PORTRAIT_SHARE else (w, h)


def compose(index: int, faces: Sequence[FaceFiles], seed: int = 0) -> Composed:
    """Image ``index`` of the set of ``seed``, its faces drawn from ``faces``."""
    rng = np.random.default_rng([seed, index])
    width, height = image_size(rng)
    grey = bool(rng.random() < GREY_SHARE)
    canvas = background(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], width, height, rng)
    wanted = 0 if index % EMPTY_EVERY == EMPTY_EVERY - 1 else int(rng.integers(1, MAX_FACES + 1))
    largest = MAX_FACE_SHARE * min(width, height)
    feet: list[np.ndarray] = []
    boxes, points, sources = [], [], []
    for _ in range(wanted):
        for _attempt in range(50):
            lo, hi = SIZE_BINS[int(rng.integers(len(SIZE_BINS)))]
            hi = min(hi, largest)
            if hi <= lo:
                continue
            side = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            angle = float(rng.uniform(-MAX_ANGLE, MAX_ANGLE))
            source = faces[int(rng.integers(len(faces)))]
            centre = (rng.uniform(side / 2, width - side / 2), rng.uniform(side / 2, height - side / 2))
            pts = read_pts(source.pts).numpy()
            affine = face_affine(pts, side, angle, centre)
            src_box = box_of(pts)
            s = src_box[2] - src_box[0]
            # the mask's extent (see face_mask), moved: faces must not overlap
            ext = np.array([src_box[0] - 0.12 * s, src_box[1] - 0.37 * s,
                            src_box[2] + 0.12 * s, src_box[3] + 0.13 * s])
            foot = footprint(ext, affine)
            if any(foot[0] < f[2] and f[0] < foot[2] and foot[1] < f[3] and f[1] < foot[3]
                   for f in feet):
                continue
            image = decode_image(source.image)
            paste(canvas, image, face_mask(image.shape[:2], src_box), affine)
            feet.append(foot)
            p = moved(pts, affine)
            points.append(p)
            boxes.append(box_of(p))
            sources.append(str(source.image))
            break
    if grey:
        canvas = np.repeat(cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    name = f"{index:04d}_{width}x{height}" + ("_grey" if grey else "")
    return Composed(name, canvas, np.array(boxes, np.float64).reshape(-1, 4),
                    np.array(points, np.float64).reshape(-1, 68, 2), sources, grey)


def composed_set(data_root: str | Path, images: int = 200, seed: int = 0,
                 limit: int | None = None) -> Iterator[Composed]:
    """The first ``limit`` (default all ``images``) images of the set of ``seed``."""
    faces = list_faces(data_root, "common")
    for i in range(images if limit is None else min(limit, images)):
        yield compose(i, faces, seed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write the composed photos and their truth to a folder.")
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "300w"))
    p.add_argument("--out", required=True, help="folder for NAME.png and truth.json")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    truth = {}
    for c in composed_set(args.data_root, args.images, args.seed, args.limit):
        cv2.imwrite(str(out / f"{c.name}.png"), cv2.cvtColor(c.image, cv2.COLOR_RGB2BGR))
        truth[c.name] = {"boxes": c.boxes.tolist(), "points": c.points.tolist(), "sources": c.sources}
        print(f"{c.name}: {len(c.boxes)} face(s)", file=sys.stderr)
    (out / "truth.json").write_text(json.dumps(truth) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
