"""One face tracked through video frames: each frame's solve starts from the last frame's answer.

Per frame, while a track is held (a *refit*): the frame is cut around the
landmark box of the previous points (re-centred and re-sized on them, as in
training), and the solver starts, in that frame, from

* ``start="pose"`` (the default): the previous points' pose with the model's
  mean shape, i.e. the previous points fitted by the PCA + similarity model
  (:class:`~face_landmarks.shape_model.PcaSimilarityModel`) with their shape
  coefficients reset to the mean. Position, size and in-plane rotation carry
  over; the shape is solved afresh every frame, so a model whose iterations
  walk away from the truth (as one trained briefly does: started on the true
  points, it ends a few percent off) cannot compound that walk from frame to
  frame. On the synthetic clip of ``benchmarks/track_synthetic.py`` it tracks
  as accurately as per-image prediction, where ``"points"`` drifts to twice
  that error within 15 frames with the same model;
* ``start="points"``: the previous points themselves, the closest start,
  for a model that converges (stays on the truth when started there).

A face that moves less between frames than the solver's reach is followed
without the detector, and every frame's box comes from landmarks, not from a
detector box.

**Losing the track.** A refit is rejected, and the frame goes to the
detector as if no track were held, when any of these holds:

* the solve went non-finite;
* the last solver step is long: its RMS over the 136 coordinates exceeds
  ``lost_step`` frame px. On a face the learned steps shrink towards a fixed
  point (under a pixel by the last iteration); started where the face it
  was trained on is not, the regressor typically still makes large moves;
* the landmark box changed size by more than a factor ``max_zoom`` in one
  frame, or its centre left the image: the shape collapsed or drifted away;
* the face no longer looks like itself: the grey image inside the new
  landmark box, at 48 x 48, correlates with the one of the previous frame
  (zero-mean normalised cross-correlation) less than ``min_similarity``.
  Consecutive frames of a followed face correlate above 0.8; a cut, or a face
  that left (a flat or unrelated background), falls far below. A regressor
  may settle on a background with small steps, so this is the check that
  catches cuts;
* every ``verify_every`` frames (0: never), the detector, run on the crop
  around the tracked landmark box, finds no face whose calibrated box
  overlaps it with IoU >= 0.5: the backstop for a track that settled on a
  still, face-free background (which correlates with itself), or that slid
  off the face a little every frame (a model whose fixed point is off the
  truth compounds its error through the next frame's box). A face turned
  past the frontal cascade's range is dropped by it too, and taken up again
  once the detector sees it.

On (re)detection the largest face found is taken, solved from the mean shape
in its calibrated detector box, then refitted once (as above) in the box of
those points, so the first frame of a track is framed like the others. When the
detector finds nothing, the frame has no face and the next frame tries again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import torch

from face_landmarks.data.frame import box_frames, landmark_boxes, warp_to_frame
from face_landmarks.detectors import DEFAULT_DETECTOR
from face_landmarks.detectors.calibration import box_iou
from face_landmarks.interfaces import Detector
from face_landmarks.predict import (FaceFit, check_iterations, fit_faces, make_detector,
                                    resolve_detector)
from selfiter.errors import ConfigError


@dataclass
class TrackedFrame:
    """The tracker's answer for one frame."""

    #: the 68 points, ``(68, 2)`` float64 image px; None when the frame has no face
    points: np.ndarray | None
    #: the landmark box the face's frame was cut around, ``(4,)`` image px; None with no face
    box: np.ndarray | None
    #: True when no track was held going into this frame, or it was lost here, so the
    #: detector ran on the whole frame (and, with points, started a new track)
    detected: bool
    #: RMS of the solver's last step, frame px (NaN with no face)
    last_step: float


#: side (px) of the grey face image the appearance check compares
APPEARANCE_SIZE = 48
#: side (px) of the crop, twice the tracked box, that the periodic detector check runs on:
#: the face then spans 128 px, well above the cascade's least size
VERIFY_CROP = 256
#: least IoU of a calibrated detection with the tracked landmark box for the check to pass
#: (the detector's recall criterion: 95.8 % of the 300-W common faces pass it)
VERIFY_IOU = 0.5


def _side(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], box[3] - box[1]))


def appearance(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The grey face inside ``box: (4,)`` (image px) of ``frame: (H, W, 3)`` RGB, resampled
    to ``(48, 48)`` float32, zero-mean and of unit norm (all zeros for a flat patch), so
    that the dot product of two is their normalised cross-correlation, in [-1, 1]."""
    affine = box_frames(torch.as_tensor(box), APPEARANCE_SIZE).numpy()
    grey = cv2.cvtColor(warp_to_frame(frame, affine, APPEARANCE_SIZE), cv2.COLOR_RGB2GRAY)
    grey = grey.astype(np.float32) - grey.mean()
    norm = float(np.linalg.norm(grey))
    # below a grey level of RMS contrast the patch is flat: no texture to compare
    return grey / norm if norm > APPEARANCE_SIZE else np.zeros_like(grey)


class FaceTracker:
    """Landmarks of one face through a sequence of RGB frames ``(H, W, 3)`` uint8.

    ``solver``: a :class:`selfiter.api.TrainedSolver` of the face problem;
    ``detector``: a registered detector name or a :class:`Detector`;
    ``iterations``: solver iterations per frame (default: the model's);
    ``start``: what a refit starts from, ``"pose"`` or ``"points"`` (see the
    module docstring); ``lost_step`` (frame px), ``max_zoom`` (ratio > 1),
    ``min_similarity`` (correlation in [-1, 1]) and ``verify_every`` (frames,
    0 = never): when a track is lost, see the module docstring; ``tta``: also solve
    every frame's face mirrored and average (default: the model's ``solver.tta``).
    """

    def __init__(self, solver: Any, detector: str | Detector = DEFAULT_DETECTOR,
                 iterations: int | None = None, start: Literal["pose", "points"] = "pose",
                 lost_step: float = 4.0, max_zoom: float = 1.3, min_similarity: float = 0.5,
                 verify_every: int = 5, tta: bool | None = None) -> None:
        check_iterations(solver, iterations)
        if start not in ("pose", "points"):
            raise ValueError(f"start must be 'pose' or 'points', got {start!r}")
        if not lost_step > 0 or not max_zoom > 1 or not -1 <= min_similarity <= 1 or verify_every < 0:
            raise ValueError(f"need lost_step > 0, max_zoom > 1, -1 <= min_similarity <= 1 and "
                             f"verify_every >= 0; got {lost_step}, {max_zoom}, {min_similarity}, "
                             f"{verify_every}")
        self.solver = solver
        self.detector = resolve_detector(detector)
        # the periodic check looks for a face of about VERIFY_CROP / 2 px: a registered
        # detector built for faces of half that (not its default least size, 30 px for
        # most) runs on a smaller working image there, e.g. dlib's HOG without upsampling
        self.verifier = self.detector
        if isinstance(detector, str):
            try:
                self.verifier = make_detector(detector, min_size=VERIFY_CROP / 4)
            except ConfigError:  # it takes no min_size: the check uses it as it is
                pass
        self.iterations = iterations
        self.tta = tta
        self.start = start
        self.lost_step = lost_step
        self.max_zoom = max_zoom
        self.min_similarity = min_similarity
        self.verify_every = verify_every
        self.points: np.ndarray | None = None  # (68, 2) image px of the last frame
        self._look: np.ndarray | None = None  # appearance() of the last frame's face
        self._since_check = 0

    def reset(self) -> None:
        """Forget the track: the next frame starts from the detector."""
        self.points = None
        self._look = None
        self._since_check = 0

    def _accept(self, frame: np.ndarray, fit: FaceFit, detected: bool,
                look: np.ndarray | None = None) -> TrackedFrame:
        self.points = fit.points[0]
        box = landmark_boxes(torch.from_numpy(self.points), 1.0).numpy()
        self._look = appearance(frame, box) if look is None else look
        return TrackedFrame(self.points, fit.boxes[0], detected, float(fit.last_step[0]))

    def _start(self, previous: np.ndarray) -> np.ndarray:
        """The refit's starting points ``(68, 2)`` (image px) from the previous ones.

        For ``"pose"`` the fit is done in image px: a frame is a similarity of
        the image, under which the model's shape coefficients do not change."""
        if self.start == "points":
            return previous
        model = self.solver.parameter_model
        s = model.fit(torch.from_numpy(previous).reshape(1, -1))  # (1, K + 4) float64
        s[:, :model.k] = model.s_mean()[:model.k].to(s)
        return model.theta(s).reshape(-1, 2).numpy()

    def _fit(self, frame: np.ndarray, box: np.ndarray, start: np.ndarray | None) -> FaceFit:
        return fit_faces(self.solver, [frame], box[None], [0],
                         None if start is None else start[None], self.iterations, self.tta)

    def _refit_look(self, frame: np.ndarray, fit: FaceFit, previous: np.ndarray) -> np.ndarray | None:
        """The new face's appearance when a refit from ``previous: (68, 2)`` still follows
        the face, else None (the track is lost)."""
        if fit.nonfinite[0] or fit.last_step[0] > self.lost_step:
            return None
        new_box = landmark_boxes(torch.from_numpy(fit.points[0]), 1.0).numpy()
        zoom = _side(new_box) / _side(landmark_boxes(torch.from_numpy(previous), 1.0).numpy())
        if not 1 / self.max_zoom <= zoom <= self.max_zoom:
            return None
        cx, cy = (new_box[:2] + new_box[2:]) / 2
        h, w = frame.shape[:2]
        if not (-0.5 <= cx <= w - 0.5 and -0.5 <= cy <= h - 0.5):
            return None
        look = appearance(frame, new_box)
        if float((look * self._look).sum()) < self.min_similarity:
            return None
        self._since_check += 1
        if self.verify_every and self._since_check >= self.verify_every:
            self._since_check = 0
            if not self._face_in_box(frame, new_box):
                return None
        return look

    def _face_in_box(self, frame: np.ndarray, box: np.ndarray) -> bool:
        """Whether the detector, run on the crop twice the size of ``box: (4,)`` (image px)
        around it (a small image, not the whole frame), finds a face whose box overlaps
        ``box`` with IoU >= :data:`VERIFY_IOU`."""
        side = 2 * _side(box)
        centre = (box[:2] + box[2:]) / 2
        crop_box = torch.as_tensor(np.concatenate([centre - side / 2, centre + side / 2]))
        affine = box_frames(crop_box, VERIFY_CROP).numpy()  # crop px -> image px: scale, shift
        found = np.array(self.verifier.detect(warp_to_frame(frame, affine, VERIFY_CROP)))
        if not len(found):
            return False
        found = found * affine[0, 0] + np.tile(affine[:, 2], 2)  # back in image px
        return bool((box_iou(found, box) >= VERIFY_IOU).any())

    def update(self, frame: np.ndarray) -> TrackedFrame:
        """Points of the tracked face in ``frame: (H, W, 3)`` uint8 RGB."""
        previous = self.points
        if previous is not None:
            box = landmark_boxes(torch.from_numpy(previous), 1.0).numpy()
            fit = self._fit(frame, box, self._start(previous))
            look = self._refit_look(frame, fit, previous)
            if look is not None:
                return self._accept(frame, fit, False, look)
        self.reset()
        boxes = self.detector.detect(frame)
        if not boxes:
            return TrackedFrame(None, None, True, float("nan"))
        fit = self._fit(frame, np.asarray(boxes[0], dtype=np.float64), None)
        if not fit.nonfinite[0]:
            box = landmark_boxes(torch.from_numpy(fit.points[0]), 1.0).numpy()
            fit = self._fit(frame, box, self._start(fit.points[0]))
        if fit.nonfinite[0]:
            return TrackedFrame(None, None, True, float("nan"))
        return self._accept(frame, fit, True)
