"""Hooks the face_landmarks plugin adds to selfiter's: the ``detector`` kind.

The plugin registers :func:`register_detectors` through the core's
``register_kinds``; any plugin may then implement it.
"""

from __future__ import annotations

from selfiter.hookspecs import hookspec


@hookspec
def register_detectors(register):
    """Register face detectors: ``register(name, factory)``.

    ``factory(**params) -> face_landmarks.interfaces.Detector``, built with its
    defaults by ``selfiter landmarks --detector NAME`` and ``selfiter track``;
    ``selfiter.plugins.Lazy("package.module:Name")`` defers its import."""
