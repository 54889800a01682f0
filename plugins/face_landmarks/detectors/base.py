"""What every bundled detector shares: the working scale, the least face, the calibration.

A detector finds faces from some least size up, at the scale of the image it
runs on (its *native* least face, ``native_min``: 30 px for Haar's 24 px
window, 80 px for dlib's window). To find faces of ``min_size`` px of the
original image, :class:`CalibratedDetector` runs it on a copy resized so that
such a face is at the native least size (down for a large face limit, up for
a small one), but never with a longer side than ``max_side`` px (a 4000 px
photo would take seconds at full size):
``f = min(native_min / min_size, max_side / longer side)``; where ``max_side``
wins, faces under ``native_min / f`` px are missed.
Raw boxes are mapped back to the original pixels, calibrated to landmark
boxes (:mod:`face_landmarks.detectors.calibration`), and those smaller than
``min_size`` are dropped, so ``min_size`` is the least side of a returned
landmark box whatever the detector.

A subclass implements :meth:`CalibratedDetector._detect` on the resized RGB
image and sets ``name`` (its registered name: calibration file and messages)
and ``native_min``.
"""

from __future__ import annotations

import importlib
from abc import abstractmethod
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import cv2
import numpy as np

from face_landmarks.detectors import INSTALL
from face_landmarks.detectors.calibration import BoxCalibration, calibration_file
from face_landmarks.interfaces import Detector
from selfiter.errors import ConfigError, DataError

#: ``calibration=SHIPPED`` (the default) loads ``models/<name>_calibration.json``
SHIPPED = "shipped"


def require(module: str, detector: str) -> ModuleType:
    """Import ``module`` for ``detector``, or raise a one-line :class:`ConfigError`
    naming the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"detector {detector!r} needs the Python package {module!r}, which "
                          f"does not import here ({exc}); install it with: {INSTALL[detector]}"
                          ) from None


def rgb_image(image: np.ndarray, who: str) -> np.ndarray:
    """``image``: ``(H, W, 3)`` uint8 RGB or ``(H, W)`` grey -> contiguous ``(H, W, 3)`` uint8."""
    a = np.asarray(image)
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise DataError(f"{who}: expected an (H, W, 3) or (H, W) uint8 image, got "
                        f"{a.dtype} of shape {a.shape}")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a)


def resize_to(image: np.ndarray, f: float) -> np.ndarray:
    """``image`` scaled by ``f`` (area averaging down, bilinear up), unchanged at ``f = 1``."""
    h, w = image.shape[:2]
    size = (max(1, round(w * f)), max(1, round(h * f)))
    if size == (w, h):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)


def unscale(boxes: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """Boxes ``(N, 4)`` in px of a copy resized by ``fx, fy`` -> px of the original (the
    resize maps pixel centres ``x_small = fx * x + (fx - 1) / 2``, per axis)."""
    scale = np.array([fx, fy, fx, fy])
    return (np.asarray(boxes, dtype=np.float64).reshape(-1, 4) - (scale - 1) / 2) / scale


class CalibratedDetector(Detector):
    """A detector run at a working scale, its boxes calibrated to landmark boxes.

    ``min_size``: least side (px of the original image) of a face to find and
    return; ``max_side``: the longest side (px) of the copy the detector runs
    on; ``calibration``: a calibration JSON file, ``"shipped"`` for this
    detector's own (``models/<name>_calibration.json``), or None for raw boxes.
    """

    #: the registered name: ``models/<name>_calibration.json``, messages
    name: ClassVar[str]
    #: least face side (px of the image it runs on) the detector is run for
    native_min: ClassVar[float]

    def __init__(self, min_size: float, max_side: int,
                 calibration: str | Path | None = SHIPPED) -> None:
        if not (np.isfinite(min_size) and min_size > 0):
            raise ConfigError(f"{self.name}: min_size must be > 0 px, got {min_size}")
        if not max_side >= 32:
            raise ConfigError(f"{self.name}: max_side must be >= 32 px, got {max_side}")
        self.min_size = float(min_size)
        self.max_side = int(max_side)
        if calibration is None:
            self.calibration = BoxCalibration()
        else:
            path = calibration_file(self.name) if calibration == SHIPPED else calibration
            self.calibration = BoxCalibration.load(path)

    def working_scale(self, height: int, width: int) -> float:
        """The factor the image is resized by before :meth:`_detect`."""
        return min(self.native_min / self.min_size, self.max_side / max(height, width))

    @abstractmethod
    def _detect(self, image: np.ndarray, min_raw: float) -> tuple[np.ndarray, np.ndarray]:
        """Raw boxes in ``image: (h, w, 3)`` uint8 RGB (the working copy): ``(N, 4)``
        float64 edges ``(x0, y0, x1, y1)`` in its px and ``(N,)`` scores (NaN where the
        detector has none). ``min_raw``: the least raw-box side wanted, in its px."""

    def raw_detections(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Uncalibrated boxes of ``image: (H, W, 3)`` uint8 RGB (or ``(H, W)`` grey) and
        their scores: ``(N, 4)`` float64 ``(x0, y0, x1, y1)`` in the image's px and
        ``(N,)``, largest first; only faces whose calibrated box has ``min_size`` or more."""
        rgb = rgb_image(image, self.name)
        h, w = rgb.shape[:2]
        small = resize_to(rgb, self.working_scale(h, w))
        fx, fy = small.shape[1] / w, small.shape[0] / h
        boxes, scores = self._detect(small, self.min_size / self.calibration.scale * fx)
        boxes = unscale(boxes, fx, fy)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        cal = self.calibration.apply(boxes)
        keep = (cal[:, 2] - cal[:, 0]) >= self.min_size
        boxes, scores = boxes[keep], scores[keep]
        order = np.argsort(-((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])),
                           kind="stable")
        return boxes[order], scores[order]

    def raw_boxes(self, image: np.ndarray) -> np.ndarray:
        """The boxes of :meth:`raw_detections`, ``(N, 4)`` float64, largest first."""
        return self.raw_detections(image)[0]

    def detect(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Landmark-box estimates ``(x0, y0, x1, y1)`` (px) of the faces in ``image:
        (H, W, 3)`` uint8 RGB, largest first."""
        return [tuple(map(float, b)) for b in self.calibration.apply(self.raw_boxes(image))]
