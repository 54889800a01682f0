"""The one calibration every detector shares: its raw box -> the landmark box it stands for.

The model is trained on frames cut around *landmark boxes* (see
:func:`face_landmarks.data.frame.landmark_boxes` with ``box_scale = 1``: the
square centred on the 68 points' bounding box, its side that box's longer
side). Each detector places its boxes its own way (Haar's starts at the
eyebrows, BlazeFace's is tight around eyes and mouth), so every raw detection
goes through a :class:`BoxCalibration` fitted on the 300-W training faces by
``benchmarks/calibrate_detector.py --detector NAME`` and shipped as
``models/NAME_calibration.json``: the boxes a detector's ``detect`` returns
are estimates of the landmark box, whatever the detector.

Everything here is in image pixels with the pixel-centre convention of
:mod:`face_landmarks.data.frame` (pixel column ``j`` is centred at ``x = j``),
boxes are ``(x0, y0, x1, y1)`` continuous edges. No OpenCV here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from selfiter.atomic import write_text
from selfiter.errors import ConfigError

#: the folder the calibrations ship in, beside the pretrained models
MODELS = Path(__file__).resolve().parents[1] / "models"


def calibration_file(name: str) -> Path:
    """The shipped calibration of the detector registered as ``name``."""
    return MODELS / f"{name}_calibration.json"


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a, b: (..., 4)`` pair by pair (broadcasting)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    lo = np.maximum(a[..., :2], b[..., :2])
    hi = np.minimum(a[..., 2:], b[..., 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).prod(-1)
    return inter / (area_a + area_b - inter)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a: (N, 4)`` and ``b: (M, 4)`` -> ``(N, M)``."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return paired_iou(a[:, None, :], b[None, :, :])


def suppress(boxes: np.ndarray, scores: np.ndarray, iou: float, over: str = "union",
             inside: float | None = None) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first (stable): ``boxes:
    (N, 4)`` edges, ``scores: (N,)``. A box goes when its overlap with a kept box exceeds
    ``iou``, the overlap being over the union (``over="union"``) or over the smaller box
    (``"min"``), or, with ``inside``, when that share of its own area lies in a kept box
    (a face cut by a tile edge). One pass per kept box over those still standing, not an
    N x N matrix: a detector may propose thousands."""
    if over not in ("union", "min"):
        raise ValueError(f"over must be 'union' or 'min', got {over!r}")
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    area = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(1)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        lo = np.maximum(b[i, :2], b[rest, :2])
        hi = np.minimum(b[i, 2:], b[rest, 2:])
        inter = np.clip(hi - lo, 0, None).prod(1)
        denom = np.minimum(area[i], area[rest]) if over == "min" else area[i] + area[rest] - inter
        stays = inter <= iou * np.maximum(denom, 1e-12)
        if inside is not None:
            stays &= inter <= inside * area[rest]
        order = rest[stays]
    return np.array(keep, dtype=int)


@dataclass(frozen=True)
class BoxCalibration:
    """Maps a detector's box to the landmark box it stands for.

    With the detector box's centre ``(cx, cy)`` and side ``s`` (px, its longer
    side), the landmark box is the square of centre ``(cx + dx * s, cy + dy * s)``
    and side ``scale * s``: ``dx, dy`` are fractions of the detector box's side
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
    def fit(cls, landmark: np.ndarray, raw: np.ndarray) -> "BoxCalibration":
        """The calibration taking detector boxes ``raw: (N, 4)`` to the landmark boxes
        ``landmark: (N, 4)`` of the same faces: the ``dx, dy, scale`` of highest mean
        IoU between calibrated and landmark boxes (Nelder-Mead, from the medians of the
        centre offsets and side ratios). Not the medians themselves: a detector whose
        boxes come in steps (dlib's pyramid, 5/6 a level, and its 8 px cells) gives
        offsets and ratios with several peaks, and a median sits on one of them."""
        from scipy.optimize import minimize

        gt, det = np.asarray(landmark, np.float64), np.asarray(raw, np.float64)
        side = np.maximum(det[:, 2] - det[:, 0], det[:, 3] - det[:, 1])
        dx = ((gt[:, 0] + gt[:, 2]) - (det[:, 0] + det[:, 2])) / 2 / side
        dy = ((gt[:, 1] + gt[:, 3]) - (det[:, 1] + det[:, 3])) / 2 / side
        start = [np.median(dx), np.median(dy), np.median((gt[:, 2] - gt[:, 0]) / side)]

        def loss(p: np.ndarray) -> float:
            if p[2] <= 0:
                return 1.0
            return -float(paired_iou(cls(*p).apply(det), gt).mean())

        best = minimize(loss, start, method="Nelder-Mead",
                        options={"xatol": 1e-5, "fatol": 1e-8, "maxiter": 4000}).x
        return cls(float(best[0]), float(best[1]), float(best[2]))

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
                              "python benchmarks/calibrate_detector.py --detector NAME)") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{p}: not a detector calibration (expected JSON with dx, dy, "
                              f"scale): {exc}") from None
        if not (np.isfinite([cal.dx, cal.dy, cal.scale]).all() and cal.scale > 0):
            raise ConfigError(f"{p}: calibration needs finite dx, dy and scale > 0, got {cal}")
        return cal

    def save(self, path: str | Path, **stats: object) -> None:
        """Write ``dx, dy, scale`` and any ``stats`` (plain JSON values) atomically."""
        write_text(path, json.dumps({**asdict(self), **stats}, indent=2) + "\n")


def greedy_match(truth: np.ndarray, boxes: np.ndarray,
                 min_iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of ``boxes: (M, 4)`` to ``truth: (N, 4)``, pairs of highest IoU
    first: per true box, the index of its box (-1 where none has IoU >= ``min_iou``
    and > 0) and that IoU (0 where unmatched), ``(N,)`` int and ``(N,)`` float64."""
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    match = np.full(len(truth), -1, dtype=int)
    best = np.zeros(len(truth))
    if len(truth) == 0 or len(boxes) == 0:
        return match, best
    iou = box_iou(truth, boxes)
    taken = np.zeros(len(boxes), dtype=bool)
    for k in np.argsort(-iou, axis=None, kind="stable"):
        g, d = divmod(int(k), len(boxes))
        if iou[g, d] < min_iou or iou[g, d] <= 0:
            break
        if match[g] < 0 and not taken[d]:
            match[g], best[g], taken[d] = d, iou[g, d], True
    return match, best
