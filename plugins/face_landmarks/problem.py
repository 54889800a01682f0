"""The 300-W face-alignment problem: 68 landmarks in face frames."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from face_landmarks.data.dataset import load_faces
from face_landmarks.data.frame import DEFAULT_BOX_SCALE, DEFAULT_FRAME_SIZE
from face_landmarks.data.layout import SPLITS
from face_landmarks.metrics import face_errors, face_metrics
from face_landmarks.report import ced_plot, worst_faces
from selfiter.errors import ConfigError
from selfiter.interfaces import Problem, ProblemData, View


class Face300W(Problem):
    """300-W faces in ``frame_size`` frames; ``theta: (N, 136)`` is the 68 points in frame px.

    Splits are the named ones of :data:`face_landmarks.data.layout.SPLITS`;
    :meth:`load` also takes a comma-separated list of folders; ``limit`` keeps
    the first N faces of each split (for tests and quick runs). Augmentation
    (training only) flips with probability ``flip``, then draws a random
    similarity (``rotate_deg``, ``scale``, ``shift``), then a random
    ``brightness`` and ``contrast`` (see :mod:`face_landmarks.augment` for their
    units); each is skipped when its parameters are 0.
    """

    splits = tuple(SPLITS)
    #: what ``selfiter evaluate`` prints under its table, metric -> meaning (unit)
    metric_legend = {
        "nme_ip": "mean error, % of the inter-pupil distance",
        "nme_io": "mean error, % of the inter-ocular distance",
        "auc08": "area under the CED to 0.08 inter-ocular, %",
        "fr08": "faces with error > 0.08 inter-ocular, %",
        **{f"{k}_51": "the same, 51 inner points" for k in ("nme_ip", "nme_io", "auc08", "fr08")},
    }

    def __init__(
        self,
        data_root: Path,
        frame_size: int = DEFAULT_FRAME_SIZE,
        box_scale: float = DEFAULT_BOX_SCALE,
        limit: int | None = None,
        flip: float = 0.5,
        rotate_deg: float = 0.0,
        scale: float = 0.0,
        shift: float = 0.0,
        brightness: float = 0.0,
        contrast: float = 0.0,
    ) -> None:
        checks = {
            "frame_size": (frame_size, frame_size >= 1, "a positive integer"),
            "box_scale": (box_scale, math.isfinite(box_scale) and box_scale > 0, "a number > 0"),
            "limit": (limit, limit is None or limit >= 1, "null or an integer >= 1"),
            "flip": (flip, 0.0 <= flip <= 1.0, "a probability in [0, 1]"),
        }
        for name, value in {"rotate_deg": rotate_deg, "shift": shift,
                            "brightness": brightness, "contrast": contrast}.items():
            checks[name] = (value, math.isfinite(value) and value >= 0, "a number >= 0")
        # a scale factor drawn from 1 +- scale must stay positive
        checks["scale"] = (scale, 0.0 <= scale < 1.0, "a number in [0, 1)")
        for name, (value, ok, expected) in checks.items():
            if not ok:
                raise ConfigError(f"face300w: {name}: expected {expected}, got {value!r}")
        self.data_root = Path(data_root)
        self.frame_size = frame_size
        self.box_scale = box_scale
        self.limit = limit
        self.flip = flip
        self.rotate_deg = rotate_deg
        self.scale = scale
        self.shift = shift
        self.brightness = brightness
        self.contrast = contrast
        self._cache: dict[str, ProblemData] = {}

    def load(self, split: str) -> ProblemData:
        """The faces of ``split`` (loaded once, then kept in memory)."""
        if split not in self._cache:
            self._cache[split] = load_faces(self.data_root, split, self.frame_size,
                                            self.box_scale, self.limit)
        return self._cache[split]

    def augment(
        self, inputs: torch.Tensor, theta: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random flip, similarity and colour of ``inputs: (B, 3, S, S)`` uint8 and
        ``theta: (B, 136)`` (frame px)."""
        similarity = (self.rotate_deg, self.scale, self.shift)
        colour = (self.brightness, self.contrast)
        if self.flip == 0 and not any(similarity) and not any(colour):
            return inputs, theta
        from face_landmarks import augment  # the model half's module, needed only here

        if self.flip > 0:
            inputs, theta = augment.random_flip(inputs, theta, generator, self.flip)
        if any(similarity):
            inputs, theta = augment.random_similarity(inputs, theta, generator, *similarity)
        if any(colour):
            inputs = augment.random_colour(inputs, generator, *colour)
        return inputs, theta

    def test_views(self) -> tuple[View, ...]:
        """The frame mirrored left to right (``solver.tta``): averaged with the plain
        solve, about 3 % less NME for twice the work (``docs/face_landmarks.md``)."""
        from face_landmarks.mirror import MirrorView

        return (MirrorView(self.frame_size),)

    def metrics(self, theta: torch.Tensor, data: ProblemData) -> dict[str, float]:
        """NME, AUC at 0.08 and failure rate at 0.08, 68 and 51 points, in percent
        (see :func:`face_landmarks.metrics.face_metrics`); ``nme_ip`` first."""
        return face_metrics(theta, data.theta_gt.to(theta.device))

    def predict(self, solver: Any, raw: Any, **options: Any) -> list[list[dict[str, list]]]:
        """Landmarks on photos: see :func:`face_landmarks.predict.predict_faces` for
        ``raw`` (paths or RGB arrays) and ``options`` (boxes, detector, iterations)."""
        from face_landmarks.predict import predict_faces

        return predict_faces(solver, raw, **options)

    def report(self, trajectory: torch.Tensor, data: ProblemData, out_dir: str) -> list[str]:
        """``ced.png`` (68 and 51 points) and ``worst_faces.png`` of the final iteration of
        ``trajectory: (K+1, N, 136)``; returns their paths."""
        pred = trajectory[-1].cpu()
        gt = data.theta_gt.cpu()
        errors = face_errors(pred, gt, "io")
        out = Path(out_dir)
        ced = ced_plot({"68 points": errors, "51 points": face_errors(pred, gt, "io", inner=True)},
                       out / "ced.png")
        names = [Path(p).name for p in data.meta["paths"]] if "paths" in data.meta else None
        worst = worst_faces(data.inputs.cpu(), pred, gt, errors, out / "worst_faces.png",
                            names=names)
        return [str(ced), str(worst)]
