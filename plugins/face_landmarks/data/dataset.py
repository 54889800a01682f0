"""Loading a split of 300-W faces into face frames (:class:`selfiter.interfaces.ProblemData`)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

from face_landmarks.data.frame import (
    DEFAULT_BOX_SCALE,
    DEFAULT_FRAME_SIZE,
    box_frames,
    image_to_frame,
    landmark_boxes,
    warp_to_frame,
)
from face_landmarks.data.layout import list_faces
from face_landmarks.data.pts import read_pts
from selfiter.errors import DataError
from selfiter.interfaces import ProblemData
from selfiter.progress import bar

#: splits larger than this show a progress bar
PROGRESS_MIN_FACES = 200


def decode_image(path: str | Path) -> np.ndarray:
    """One image file as 8-bit RGB: ``(H, W, 3)`` uint8.

    Greyscale is replicated to three channels, 16-bit is scaled to 8-bit and
    alpha is dropped. Raises :class:`DataError` naming the file when it cannot
    be read or decoded."""
    p = Path(path)
    try:
        raw = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{p}: cannot read image: {exc.strerror or exc}") from None
    # IMREAD_UNCHANGED keeps the stored pixel grid: IMREAD_COLOR would apply the
    # EXIF orientation and rotate the image away from its annotations.
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if image is None:
        raise DataError(f"{p}: not a readable image (corrupt, truncated or not JPEG/PNG)")
    if image.dtype == np.uint16:
        image = np.round(image / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DataError(f"{p}: unsupported pixel type {image.dtype}; expected 8- or 16-bit")
    channels = 1 if image.ndim == 2 else image.shape[2]
    codes = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}
    if channels not in codes:
        raise DataError(f"{p}: unsupported image with {channels} channels")
    return cv2.cvtColor(image, codes[channels])


def load_faces(
    data_root: str | Path,
    split: str,
    frame_size: int = DEFAULT_FRAME_SIZE,
    box_scale: float = DEFAULT_BOX_SCALE,
    limit: int | None = None,
) -> ProblemData:
    """The faces of ``split`` (see :mod:`face_landmarks.data.layout`), each in its frame.

    Returns ``inputs: (N, 3, S, S)`` uint8 RGB frames and ``theta_gt: (N, 136)``
    float32, the 68 ground-truth points in frame px as ``x1, y1, x2, y2, ...``;
    ``meta`` holds ``paths`` (N image paths), ``frame_to_image: (N, 2, 3)``
    float64 affines and ``points_image: (N, 68, 2)`` float32, the original
    0-based points in image px. ``limit`` keeps the first N faces."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    faces = list_faces(data_root, split)[:limit]
    # every annotation is checked before the slower image decoding starts
    points = torch.stack([read_pts(f.pts) for f in faces])  # (N, 68, 2) float64
    extent = (points.amax(dim=1) - points.amin(dim=1)).amax(dim=1)
    if not bool((extent > 0).all()):
        bad = faces[int((extent <= 0).nonzero()[0])].pts
        raise DataError(f"{bad}: all 68 points coincide; cannot frame the face")
    affines = box_frames(landmark_boxes(points, box_scale), frame_size)  # (N, 2, 3) float64
    # channels-first from the start: a permuted copy of a whole split would double its memory
    frames = np.empty((len(faces), 3, frame_size, frame_size), dtype=np.uint8)
    affines_np = affines.numpy()

    def frame_of(i: int) -> None:
        frame = warp_to_frame(decode_image(faces[i].image), affines_np[i], frame_size)
        frames[i] = frame.transpose(2, 0, 1)

    # cv2 releases the GIL while decoding and warping, so threads use every core;
    # map() cancels the pending faces when one raises
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        done = pool.map(frame_of, range(len(faces)))
        for _ in bar(done, total=len(faces), desc=f"load {split}", unit="face",
                      disable=len(faces) <= PROGRESS_MIN_FACES):
            pass
    inputs = torch.from_numpy(frames)
    theta_gt = image_to_frame(points, affines).reshape(len(faces), -1).to(torch.float32)
    meta = {
        "paths": [str(f.image) for f in faces],
        "frame_to_image": affines,
        "points_image": points.to(torch.float32),
    }
    return ProblemData(inputs, theta_gt, meta, source=str(data_root))
