"""Face boxes from dlib's MMOD CNN face detector (``dlib_mmod``), calibrated.

``dlib.cnn_face_detection_model_v1`` (``dlib-bin``, Boost Software License) with
``mmod_human_face_detector.dat`` from the ``face-recognition-models`` package
(the model: CC0 1.0 by Davis King; the package: MIT). The file is found
beside the package's ``__init__`` rather than through it: that module imports
``pkg_resources``, which setuptools >= 81 no longer ships. Its score is the
detection confidence. A CNN on the CPU: slow (seconds on a large image),
hence the small default ``max_side``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from face_landmarks.detectors import INSTALL
from face_landmarks.detectors.base import SHIPPED
from face_landmarks.detectors.dlib_hog import DlibDetector, rectangles_to_edges
from selfiter.errors import ConfigError

MODEL_FILE = "mmod_human_face_detector.dat"


def model_path() -> Path:
    """The MMOD model file inside the installed ``face_recognition_models`` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "models" / MODEL_FILE
        if path.is_file():
            return path
    raise ConfigError(f"detector 'dlib_mmod' needs {MODEL_FILE} from the package "
                      f"face_recognition_models, not found here; install it with: "
                      f"{INSTALL['dlib_mmod']}")


class DlibMmodDetector(DlibDetector):
    """Faces by dlib's MMOD CNN, boxes calibrated to landmark boxes.

    ``threshold``: the least confidence kept; ``min_size``, ``max_side`` and
    ``calibration`` as in :class:`~face_landmarks.detectors.base.CalibratedDetector`
    (the network runs where a face of ``min_size`` spans 80 px).
    """

    name = "dlib_mmod"

    def __init__(self, threshold: float = 0.0, min_size: float = 40, max_side: int = 1280,
                 calibration: str | Path | None = SHIPPED) -> None:
        super().__init__(threshold, min_size, max_side, calibration)

    def load(self, dlib: Any) -> Any:
        return dlib.cnn_face_detection_model_v1(str(model_path()))

    def _detect(self, image: np.ndarray, min_raw: float) -> tuple[np.ndarray, np.ndarray]:
        found = [d for d in self._model(image, 0) if d.confidence >= self.threshold]
        return (rectangles_to_edges([d.rect for d in found]),
                np.array([d.confidence for d in found], dtype=np.float64))
