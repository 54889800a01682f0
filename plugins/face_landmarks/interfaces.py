"""The face plugin's own interface: a detector that proposes face boxes in a photo.

Detectors are a component kind of this plugin, not of the core (the core
knows nothing of faces): the kind ``detector`` and its hook
``register_detectors`` (:mod:`face_landmarks.hookspecs`) are added to the
registry by this plugin's ``register_kinds``, so another plugin adds a
detector with ``register_detectors(register)`` and ``--detector NAME`` finds it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["Detector"]


class Detector(ABC):
    """Finds faces in a raw image."""

    @abstractmethod
    def detect(self, image: Any) -> list[tuple[float, float, float, float]]:
        """Boxes ``(x0, y0, x1, y1)`` in the image's own pixels (see
        :mod:`face_landmarks.predict` for the conventions), largest first."""
