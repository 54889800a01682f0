"""Face boxes from OpenCV's frontal-face Haar cascade, calibrated to the landmark-box convention.

The model is trained on frames cut around *landmark boxes* (see
:func:`face_landmarks.data.frame.landmark_boxes` with ``box_scale = 1``: the
square centred on the 68 points' bounding box, its side that box's longer
side). A Haar box is placed differently (it starts at the eyebrows and sits
higher than the chin), so every raw detection goes through a
:class:`BoxCalibration` fitted on the 300-W training faces by
``benchmarks/calibrate_detector.py`` and shipped in
``models/haar_calibration.json``: the boxes :meth:`HaarFaceDetector.detect`
returns are estimates of the landmark box, whatever the detector.

Everything here is in image pixels with the pixel-centre convention of
:mod:`face_landmarks.data.frame` (pixel column ``j`` is centred at ``x = j``),
boxes are ``(x0, y0, x1, y1)`` continuous edges.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from selfiter.atomic import write_text
from selfiter.errors import ConfigError, DataError
from face_landmarks.interfaces import Detector

#: the calibration fitted on the 300-W training faces, shipped with the plugin
CALIBRATION_FILE = Path(__file__).resolve().parent / "models" / "haar_calibration.json"
#: the cascade file, from the cascades the opencv-python wheel ships in ``cv2.data.haarcascades``
DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a: (N, 4)`` and ``b: (M, 4)`` -> ``(N, M)``."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


@dataclass(frozen=True)
class BoxCalibration:
    """Maps a detector's square box to the landmark box it stands for.

    With the detector box's centre ``(cx, cy)`` and side ``s`` (px), the
    landmark box is the square of centre ``(cx + dx * s, cy + dy * s)`` and
    side ``scale * s``: ``dx, dy`` are fractions of the detector box's side
    (+x right, +y down), ``scale`` is dimensionless. The identity is ``(0, 0, 1)``.
    """

    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0

    def apply(self, boxes: np.ndarray) -> np.ndarray:
        """``boxes: (N, 4)`` detector boxes -> ``(N, 4)`` float64 landmark boxes (px)."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
        cx = (b[:, 0] + b[:, 2]) / 2 + self.dx * side
        cy = (b[:, 1] + b[:, 3]) / 2 + self.dy * side
        half = self.scale * side / 2
        return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)

    def invert(self, boxes: np.ndarray) -> np.ndarray:
        """The square detector boxes that :meth:`apply` maps onto landmark ``boxes: (N, 4)``."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / self.scale
        cx = (b[:, 0] + b[:, 2]) / 2 - self.dx * side
        cy = (b[:, 1] + b[:, 3]) / 2 - self.dy * side
        return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)

    @classmethod
    def load(cls, path: str | Path) -> "BoxCalibration":
        """Read a calibration written by :meth:`save` (extra keys, such as the fit's
        statistics, are ignored)."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
            cal = cls(float(data["dx"]), float(data["dy"]), float(data["scale"]))
        except FileNotFoundError:
            raise ConfigError(f"{p}: detector calibration not found (write it with "
                              "python benchmarks/calibrate_detector.py)") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{p}: not a detector calibration (expected JSON with dx, dy, "
                              f"scale): {exc}") from None
        if not (np.isfinite([cal.dx, cal.dy, cal.scale]).all() and cal.scale > 0):
            raise ConfigError(f"{p}: calibration needs finite dx, dy and scale > 0, got {cal}")
        return cal

    def save(self, path: str | Path, **stats: object) -> None:
        """Write ``dx, dy, scale`` and any ``stats`` (plain JSON values) atomically."""
        write_text(path, json.dumps({**asdict(self), **stats}, indent=2) + "\n")


class HaarFaceDetector(Detector):
    """Frontal faces in an RGB image by OpenCV's Viola-Jones cascade, boxes calibrated.

    ``scale_factor``, ``min_neighbors`` and ``min_size`` (px of the image the
    cascade runs on) are those of ``cv2.CascadeClassifier.detectMultiScale``.
    The cascade runs on a resized copy whose longer side is at most
    ``max_side`` px (a 4000 px photo would take seconds at full size, and a
    face in it is far larger than the cascade needs) and whose shorter side
    is at least ``min_side`` px (so the face of a tiny image still spans the
    cascade's 24 px window); boxes are mapped back to the original pixels.
    ``calibration`` is a calibration JSON file, or None for raw cascade boxes.
    """

    def __init__(self, cascade: str = DEFAULT_CASCADE, scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 30, max_side: int = 1600,
                 min_side: int = 128, calibration: str | Path | None = CALIBRATION_FILE) -> None:
        if not scale_factor > 1.0:
            raise ConfigError(f"haar: scale_factor must be > 1, got {scale_factor}")
        if min_neighbors < 0 or min_size < 1 or min_side < 1 or max_side < min_side:
            raise ConfigError(f"haar: need min_neighbors >= 0, min_size >= 1 and "
                              f"1 <= min_side <= max_side, got {min_neighbors}, {min_size}, "
                              f"{min_side}, {max_side}")
        path = Path(cascade) if Path(cascade).is_file() else Path(cv2.data.haarcascades) / cascade
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise ConfigError(f"haar: cannot load cascade {path}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.max_side = max_side
        self.min_side = min_side
        self.calibration = BoxCalibration() if calibration is None else BoxCalibration.load(calibration)

    def raw_boxes(self, image: np.ndarray) -> np.ndarray:
        """Uncalibrated cascade boxes of ``image: (H, W, 3)`` uint8 RGB (or ``(H, W)`` grey):
        ``(N, 4)`` float64 ``(x0, y0, x1, y1)`` in the image's px, largest first."""
        if image.ndim == 3:
            grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        elif image.ndim == 2:
            grey = image
        else:
            raise DataError(f"haar: expected an (H, W, 3) or (H, W) image, got shape {image.shape}")
        h, w = grey.shape
        f = min(1.0, self.max_side / max(h, w))
        f = max(f, self.min_side / min(h, w))
        if f != 1.0:
            size = (max(1, round(w * f)), max(1, round(h * f)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        found = self.cascade.detectMultiScale(
            cv2.equalizeHist(grey), scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors, minSize=(self.min_size, self.min_size))
        if len(found) == 0:
            return np.zeros((0, 4))
        x, y, bw, bh = np.asarray(found, dtype=np.float64).T
        # pixels x .. x+w-1 have edges x - 0.5 .. x + w - 0.5
        edges = np.stack([x - 0.5, y - 0.5, x + bw - 0.5, y + bh - 0.5], axis=1)
        # the resize maps pixel centres x_small = fx * x + (fx - 1) / 2, per axis
        fx, fy = grey.shape[1] / w, grey.shape[0] / h
        scale = np.array([fx, fy, fx, fy])
        boxes = (edges - (scale - 1) / 2) / scale
        return boxes[np.argsort(-(bw * bh), kind="stable")]

    def detect(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Landmark-box estimates ``(x0, y0, x1, y1)`` (px) of the faces in ``image:
        (H, W, 3)`` uint8 RGB, largest first."""
        return [tuple(map(float, b)) for b in self.calibration.apply(self.raw_boxes(image))]
