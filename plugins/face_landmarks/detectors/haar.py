"""Face boxes from OpenCV's frontal-face Haar cascade (``haar``), calibrated to landmark boxes.

The cascade ships in the opencv-python wheel (``cv2.data.haarcascades``); it
runs on the histogram-equalised grey image. Its score is the number of
neighbouring raw windows merged into the box (``detectMultiScale2``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from face_landmarks.detectors.base import SHIPPED, CalibratedDetector
from selfiter.errors import ConfigError

#: the cascade file, from the cascades the opencv-python wheel ships in ``cv2.data.haarcascades``
DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"
#: the cascade's window (px): it finds nothing smaller
WINDOW = 24


class HaarFaceDetector(CalibratedDetector):
    """Frontal faces in an RGB image by OpenCV's Viola-Jones cascade, boxes calibrated.

    ``scale_factor`` and ``min_neighbors`` are those of
    ``cv2.CascadeClassifier.detectMultiScale``; ``min_size``, ``max_side`` and
    ``calibration`` as in :class:`~face_landmarks.detectors.base.CalibratedDetector`
    (the cascade runs where a face of ``min_size`` spans 30 px, its longer side
    at most ``max_side`` px).
    """

    name = "haar"
    native_min = 30.0

    def __init__(self, cascade: str = DEFAULT_CASCADE, scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: float = 30, max_side: int = 1600,
                 calibration: str | Path | None = SHIPPED) -> None:
        if not scale_factor > 1.0:
            raise ConfigError(f"haar: scale_factor must be > 1, got {scale_factor}")
        if min_neighbors < 0:
            raise ConfigError(f"haar: min_neighbors must be >= 0, got {min_neighbors}")
        super().__init__(min_size, max_side, calibration)
        path = Path(cascade) if Path(cascade).is_file() else Path(cv2.data.haarcascades) / cascade
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise ConfigError(f"haar: cannot load cascade {path}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def _detect(self, image: np.ndarray, min_raw: float) -> tuple[np.ndarray, np.ndarray]:
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        # a little under the least raw side: the calibrated size is what is filtered on
        least = max(WINDOW, int(0.9 * min_raw))
        found, neighbours = self.cascade.detectMultiScale2(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(least, least))
        if len(found) == 0:
            return np.zeros((0, 4)), np.zeros(0)
        x, y, bw, bh = np.asarray(found, dtype=np.float64).T
        # pixels x .. x+w-1 have edges x - 0.5 .. x + w - 0.5
        return (np.stack([x - 0.5, y - 0.5, x + bw - 0.5, y + bh - 0.5], axis=1),
                np.asarray(neighbours, dtype=np.float64).reshape(-1))
