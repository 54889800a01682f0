"""Hook implementations of the face_landmarks plugin."""

from selfiter.hookspecs import hookimpl  # noqa: F401
