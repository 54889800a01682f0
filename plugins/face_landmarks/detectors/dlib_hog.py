"""Face boxes from dlib's HOG + linear-SVM frontal-face detector (``dlib_hog``), calibrated.

``dlib.get_frontal_face_detector()`` from the ``dlib-bin`` wheel (Boost Software
License): five HOG filters (front, left, right, front rotated left and
right), an 80 x 80 px window over an image pyramid (steps of 5/6). Its score
is the SVM margin (``run(image, 0, threshold)``); the image is resized here
instead of dlib's own upsampling, so that ``min_size`` sets the scale.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from face_landmarks.detectors.base import SHIPPED, CalibratedDetector, require


def rectangles_to_edges(rects) -> np.ndarray:
    """dlib rectangles (inclusive pixel corners) -> ``(N, 4)`` float64 edges ``(x0, y0, x1, y1)``."""
    return np.array([[r.left() - 0.5, r.top() - 0.5, r.right() + 0.5, r.bottom() + 0.5]
                     for r in rects], dtype=np.float64).reshape(-1, 4)


class DlibDetector(CalibratedDetector):
    """A dlib detector: ``threshold`` is the least score kept; :meth:`load` builds the model."""

    native_min = 80.0

    def __init__(self, threshold: float, min_size: float, max_side: int,
                 calibration: str | Path | None) -> None:
        dlib = require("dlib", self.name)
        super().__init__(min_size, max_side, calibration)
        self.threshold = float(threshold)
        self._model = self.load(dlib)

    @abstractmethod
    def load(self, dlib: Any) -> Any:
        """The dlib model, from the imported ``dlib`` module."""


class DlibHogDetector(DlibDetector):
    """Frontal faces by dlib's HOG detector, boxes calibrated to landmark boxes.

    ``threshold``: the least SVM score kept (dlib's ``adjust_threshold``; 0 is
    dlib's default, lower finds more faces and more false ones); ``min_size``,
    ``max_side`` and ``calibration`` as in
    :class:`~face_landmarks.detectors.base.CalibratedDetector` (the detector
    runs where a face of ``min_size`` spans its 80 px window).
    """

    name = "dlib_hog"

    def __init__(self, threshold: float = 0.0, min_size: float = 40, max_side: int = 2048,
                 calibration: str | Path | None = SHIPPED) -> None:
        super().__init__(threshold, min_size, max_side, calibration)

    def load(self, dlib: Any) -> Any:
        return dlib.get_frontal_face_detector()

    def _detect(self, image: np.ndarray, min_raw: float) -> tuple[np.ndarray, np.ndarray]:
        rects, scores, _ = self._model.run(image, 0, self.threshold)
        return rectangles_to_edges(rects), np.asarray(scores, dtype=np.float64)
